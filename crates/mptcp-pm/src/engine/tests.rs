//! The policies on recorded event and measurement sequences.

use super::*;
use crate::config::{Config, PolicyRule};

const T: u32 = 0xabcd;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn path(id: u8, addr: &str, iface: &str) -> LocalPath {
    LocalPath {
        id,
        address: addr.parse().unwrap(),
        ifindex: u32::from(id) + 10,
        interface: iface.into(),
        priority: 0,
        backup: false,
    }
}

fn paths() -> Vec<LocalPath> {
    vec![
        path(1, "198.18.0.1", "wlan0"),
        path(2, "198.18.1.1", "wwan0"),
    ]
}

fn ev(kind: EventKind, local: &str, remote: &str) -> Event {
    let mut e = Event::new(kind);
    e.token = Some(T);
    e.local = Some(sa(local));
    e.remote = Some(sa(remote));
    e
}

fn engine(policy: Policy) -> (Engine, Instant) {
    let config = UserspaceConfig {
        default_policy: policy,
        ..UserspaceConfig::default()
    };
    let mut e = Engine::new(config);
    let now = Instant::now();
    assert!(e.set_paths(now, paths()).is_empty());
    (e, now)
}

fn commands(d: Vec<Decision>) -> Vec<Command> {
    d.into_iter().map(|d| d.command).collect()
}

const SERVER: &str = "198.18.0.2:443";
const FIRST: &str = "198.18.0.1:40000";
const SECOND: &str = "198.18.1.1:40001";

fn established(e: &mut Engine, now: Instant) -> Vec<Command> {
    assert!(e
        .event(now, &ev(EventKind::Created, FIRST, SERVER))
        .is_empty());
    commands(e.event(now, &ev(EventKind::Established, FIRST, SERVER)))
}

fn create(id: u8, backup: bool) -> Command {
    let p = &paths()[usize::from(id) - 1];
    Command::Create {
        token: T,
        local_id: id,
        local: p.address,
        ifindex: p.ifindex,
        remote: sa(SERVER),
        backup,
    }
}

fn set_backup(local: &str, backup: bool) -> Command {
    Command::SetBackup {
        token: T,
        local: sa(local),
        remote: sa(SERVER),
        backup,
    }
}

fn sample(local: &str, rtt_ms: u64, acked: u64, unacked: u32) -> SubflowSample {
    SubflowSample {
        local: sa(local),
        remote: sa(SERVER),
        rtt: Duration::from_millis(rtt_ms),
        rto: Duration::from_millis(200 + rtt_ms),
        bytes_acked: acked,
        unacked,
    }
}

fn measure(e: &mut Engine, now: Instant, subflows: Vec<SubflowSample>) -> Vec<Command> {
    commands(e.measure(now, &[ConnSample { token: T, subflows }]))
}

#[test]
fn aggregate_opens_every_path_and_recreates_with_backoff() {
    let (mut e, t0) = engine(Policy::Aggregate);
    assert_eq!(established(&mut e, t0), [create(2, false)]);
    // Nothing twice while the create is pending.
    assert!(e.tick(t0 + Duration::from_millis(100)).is_empty());
    assert!(commands(e.event(t0, &ev(EventKind::SubEstablished, SECOND, SERVER))).is_empty());
    // The subflow dies while its path is usable: again after 0.5 s, then 1 s.
    let t1 = t0 + Duration::from_secs(1);
    assert!(e
        .event(t1, &ev(EventKind::SubClosed, SECOND, SERVER))
        .is_empty());
    assert!(e.tick(t1 + Duration::from_millis(400)).is_empty());
    let d = e.tick(t1 + Duration::from_millis(500));
    assert_eq!(commands(d.clone()), [create(2, false)]);
    assert!(
        d[0].reason.contains("again after a backoff"),
        "{}",
        d[0].reason
    );
    let t2 = t1 + Duration::from_millis(600);
    assert!(
        e.event(t2, &ev(EventKind::SubClosed, SECOND, SERVER))
            .is_empty(),
        "failed join"
    );
    assert!(e.tick(t2 + Duration::from_millis(900)).is_empty());
    assert_eq!(
        commands(e.tick(t2 + Duration::from_secs(1))),
        [create(2, false)]
    );
    // A refused create is retried too.
    let t3 = t2 + Duration::from_secs(1);
    e.failed(t3, &create(2, false));
    assert!(e.tick(t3 + Duration::from_millis(1900)).is_empty());
    assert_eq!(
        commands(e.tick(t3 + Duration::from_secs(2))),
        [create(2, false)]
    );
}

#[test]
fn a_path_that_goes_closes_its_subflows_and_one_that_comes_back_gets_one_at_once() {
    let (mut e, t0) = engine(Policy::Aggregate);
    established(&mut e, t0);
    e.event(t0, &ev(EventKind::SubEstablished, SECOND, SERVER));
    let t1 = t0 + Duration::from_secs(1);
    let d = commands(e.set_paths(t1, vec![paths()[0].clone()]));
    assert_eq!(
        d,
        [Command::Destroy {
            token: T,
            local: sa(SECOND),
            remote: sa(SERVER)
        }]
    );
    // Our own destroy is not re-created.
    assert!(e
        .event(t1, &ev(EventKind::SubClosed, SECOND, SERVER))
        .is_empty());
    assert!(e.tick(t1 + Duration::from_secs(20)).is_empty());
    // The path is back: a subflow at once, no backoff.
    let t2 = t1 + Duration::from_secs(30);
    assert_eq!(commands(e.set_paths(t2, paths())), [create(2, false)]);
}

#[test]
fn aggregate_honours_backup_rules_and_single_adds_nothing() {
    let (mut e, t0) = engine(Policy::Aggregate);
    let mut p = paths();
    p[1].backup = true;
    e.set_paths(t0, p);
    assert_eq!(established(&mut e, t0), [create(2, true)]);
    let (mut e, t0) = engine(Policy::Single);
    assert!(established(&mut e, t0).is_empty());
    assert!(e.set_paths(t0, paths()).is_empty());
}

#[test]
fn handover_promotes_on_stall_and_moves_back_after_the_hold_time() {
    let (mut e, t0) = engine(Policy::Handover);
    assert_eq!(established(&mut e, t0), [create(2, true)]);
    let mut sub = ev(EventKind::SubEstablished, SECOND, SERVER);
    sub.backup = Some(true);
    assert!(e.event(t0, &sub).is_empty());
    // Primary progressing: nothing to do.
    let mut t = t0;
    for i in 1..5u64 {
        t += Duration::from_millis(100);
        let m = measure(
            &mut e,
            t,
            vec![sample(FIRST, 10, i * 1000, 10), sample(SECOND, 30, 0, 0)],
        );
        assert!(m.is_empty(), "{m:?}");
    }
    // Primary stuck with data in flight: 2 x RTO (420 ms) later, handover.
    let stuck_at = t;
    let mut promoted = None;
    for _ in 0..10 {
        t += Duration::from_millis(100);
        let m = measure(
            &mut e,
            t,
            vec![sample(FIRST, 10, 4000, 10), sample(SECOND, 30, 0, 0)],
        );
        if !m.is_empty() {
            promoted = Some((t, m));
            break;
        }
    }
    let (at, m) = promoted.expect("a handover");
    assert!(
        at - stuck_at >= Duration::from_millis(420),
        "{:?}",
        at - stuck_at
    );
    assert!(
        at - stuck_at <= Duration::from_millis(600),
        "{:?}",
        at - stuck_at
    );
    assert_eq!(m, [set_backup(FIRST, true), set_backup(SECOND, false)]);
    let status = &e.status(at)[0];
    assert_eq!(status.active.as_deref(), Some("wwan0"));
    assert!(status
        .last
        .as_ref()
        .unwrap()
        .contains("handover to wwan0: the primary is stalled"));
    // The primary recovers: back after 2 s of health, not before.
    let healthy_from = at + Duration::from_millis(100);
    t = healthy_from;
    let mut back = None;
    for i in 0..40u64 {
        let m = measure(
            &mut e,
            t,
            vec![
                sample(FIRST, 10, 5000 + i, 0),
                sample(SECOND, 30, 100 * i, 5),
            ],
        );
        if !m.is_empty() {
            back = Some((t, m));
            break;
        }
        t += Duration::from_millis(100);
    }
    let (at, m) = back.expect("back to the primary");
    assert!(
        at - healthy_from >= Duration::from_secs(2),
        "{:?}",
        at - healthy_from
    );
    assert_eq!(m, [set_backup(FIRST, false), set_backup(SECOND, true)]);
    // The kernel refuses one (not joined yet): the next pass asks again.
    e.failed(at, &set_backup(SECOND, true));
    let m = measure(
        &mut e,
        at + Duration::from_millis(100),
        vec![sample(FIRST, 10, 9000, 0), sample(SECOND, 30, 9000, 0)],
    );
    assert_eq!(m, [set_backup(SECOND, true)]);
}

#[test]
fn handover_when_the_primary_path_goes() {
    let (mut e, t0) = engine(Policy::Handover);
    established(&mut e, t0);
    let mut sub = ev(EventKind::SubEstablished, SECOND, SERVER);
    sub.backup = Some(true);
    e.event(t0, &sub);
    let d = commands(e.set_paths(t0, vec![paths()[1].clone()]));
    assert_eq!(
        d,
        [
            Command::Destroy {
                token: T,
                local: sa(FIRST),
                remote: sa(SERVER)
            },
            set_backup(SECOND, false)
        ]
    );
    // The primary's path is back: a backup subflow there, traffic stays until it
    // has been healthy for the hold time.
    let t1 = t0 + Duration::from_secs(3);
    e.event(t1, &ev(EventKind::SubClosed, FIRST, SERVER));
    assert_eq!(commands(e.set_paths(t1, paths())), [create(1, true)]);
    let third = "198.18.0.1:40002";
    let mut sub = ev(EventKind::SubEstablished, third, SERVER);
    sub.backup = Some(true);
    assert!(e.event(t1, &sub).is_empty());
    let m = measure(
        &mut e,
        t1,
        vec![sample(third, 10, 0, 0), sample(SECOND, 30, 10, 1)],
    );
    assert!(m.is_empty());
    let m = measure(
        &mut e,
        t1 + Duration::from_millis(2100),
        vec![sample(third, 10, 0, 0), sample(SECOND, 30, 20, 1)],
    );
    assert_eq!(m, [set_backup(third, false), set_backup(SECOND, true)]);
}

#[test]
fn interactive_follows_the_lowest_rtt_with_hysteresis() {
    let (mut e, t0) = engine(Policy::Interactive);
    assert_eq!(established(&mut e, t0), [create(2, true)]);
    let mut sub = ev(EventKind::SubEstablished, SECOND, SERVER);
    sub.backup = Some(true);
    e.event(t0, &sub);
    // A recorded RTT series (ms): wlan0 degrades from 20 to 80, wwan0 stays at 40.
    let series: [(u64, u64); 12] = [
        (20, 40),
        (22, 40),
        (25, 41),
        (35, 40),
        (45, 39),
        (52, 40),
        (60, 40),
        (70, 41),
        (80, 40),
        (80, 40),
        (80, 40),
        (80, 40),
    ];
    let mut t = t0 + Duration::from_secs(3);
    let mut switched = Vec::new();
    for (i, (a, b)) in series.iter().enumerate() {
        let m = measure(
            &mut e,
            t,
            vec![sample(FIRST, *a, i as u64, 0), sample(SECOND, *b, 0, 0)],
        );
        if !m.is_empty() {
            switched.push((i, m));
        }
        t += Duration::from_millis(200);
    }
    // 40 < 0.75 x 60 first at index 6 (60 ms); three in a row: index 8.
    assert_eq!(switched.len(), 1, "{switched:?}");
    assert_eq!(switched[0].0, 8);
    assert_eq!(
        switched[0].1,
        [set_backup(FIRST, true), set_backup(SECOND, false)]
    );
    // Similar RTTs afterwards never flap back.
    for i in 0..20u64 {
        let m = measure(
            &mut e,
            t,
            vec![sample(FIRST, 38, 0, 0), sample(SECOND, 40 + i % 3, i, 0)],
        );
        assert!(m.is_empty(), "{m:?}");
        t += Duration::from_millis(200);
    }
}

#[test]
fn interactive_ignores_sub_millisecond_differences() {
    let (mut e, t0) = engine(Policy::Interactive);
    established(&mut e, t0);
    let mut sub = ev(EventKind::SubEstablished, SECOND, SERVER);
    sub.backup = Some(true);
    e.event(t0, &sub);
    let us = |n: u64| SubflowSample {
        rtt: Duration::from_micros(n),
        ..sample(FIRST, 0, 0, 0)
    };
    let mut t = t0 + Duration::from_secs(3);
    for i in 0..10u64 {
        let mut second = us(20);
        second.local = sa(SECOND);
        let m = measure(&mut e, t, vec![us(200 + i), second]);
        assert!(m.is_empty(), "{m:?}");
        t += Duration::from_millis(200);
    }
}

#[test]
fn server_side_announces_and_withdraws() {
    let (mut e, t0) = engine(Policy::Aggregate);
    let mut c = ev(EventKind::Created, "198.18.0.1:443", "198.18.9.9:5000");
    c.server_side = Some(true);
    e.event(t0, &c);
    let mut est = c.clone();
    est.kind = EventKind::Established;
    let d = commands(e.event(t0, &est));
    assert_eq!(
        d,
        [Command::Announce {
            token: T,
            id: 2,
            address: "198.18.1.1".parse().unwrap()
        }]
    );
    let d = commands(e.set_paths(t0, vec![paths()[0].clone()]));
    assert_eq!(d, [Command::Remove { token: T, id: 2 }]);
}

#[test]
fn rules_pick_the_policy_per_port() {
    let mut config = Config::default().userspace;
    config.rules.push(PolicyRule {
        policy: Policy::Single,
        remote: None,
        remote_port: Some(443),
        local_port: None,
        primary: None,
    });
    let mut e = Engine::new(config);
    let t0 = Instant::now();
    e.set_paths(t0, paths());
    assert!(established(&mut e, t0).is_empty(), "port 443: single");
    let mut other = ev(EventKind::Established, FIRST, "198.18.0.2:80");
    other.token = Some(T + 1);
    let d = e.event(t0, &other);
    assert_eq!(d.len(), 1, "port 80: the default, aggregate");
    let s = e.status(t0);
    assert_eq!(
        (s[0].policy, s[1].policy),
        (Policy::Single, Policy::Aggregate)
    );
}

#[test]
fn ended_connections_are_forgotten() {
    let (mut e, mut t) = engine(Policy::Aggregate);
    for i in 0..10_000u32 {
        let mut c = ev(EventKind::Created, FIRST, SERVER);
        c.token = Some(i);
        e.event(t, &c);
        c.kind = EventKind::Established;
        e.event(t, &c);
        c.kind = EventKind::Closed;
        e.event(t, &c);
        t += Duration::from_micros(100);
    }
    assert!(e.is_empty());
    // Closed events lost (the socket overflowed): two measurements without the
    // connection forget it.
    established(&mut e, t);
    assert_eq!(e.len(), 1);
    e.measure(t, &[]);
    assert_eq!(e.len(), 1);
    e.measure(t, &[]);
    assert!(e.is_empty());
}

#[test]
fn a_connection_whose_established_event_was_lost_is_adopted_from_a_dump() {
    let (mut e, now) = engine(Policy::Aggregate);
    // "Created" came, "established" was lost when the event socket overflowed: the
    // connection is tracked but gets no subflow.
    assert!(e
        .event(now, &ev(EventKind::Created, FIRST, SERVER))
        .is_empty());
    assert!(e.knows(T));
    assert!(!e.is_established(T));
    // A dump finds it established: its policy applies from then on.
    let found = Adopted {
        token: T,
        local: sa(FIRST),
        remote: sa(SERVER),
        server_side: false,
        subflows: vec![(sa(FIRST), sa(SERVER), false)],
    };
    let d = e.adopt(now, &found);
    assert!(d[0].reason.contains("its event lost"), "{d:?}");
    assert_eq!(commands(d), [create(2, false)]);
    assert!(e.is_established(T));
    // Once established, dumps and the late event change nothing.
    assert!(e.adopt(now, &found).is_empty());
    assert!(e
        .event(now, &ev(EventKind::Established, FIRST, SERVER))
        .is_empty());
}

#[test]
fn a_connection_found_without_events_is_adopted_and_repaired() {
    let (mut e, now) = engine(Policy::Aggregate);
    // Open before the daemon started; only its second subflow is left.
    let found = Adopted {
        token: T,
        local: sa(FIRST),
        remote: sa(SERVER),
        server_side: false,
        subflows: vec![(sa(SECOND), sa(SERVER), false)],
    };
    let d = e.adopt(now, &found);
    assert!(d[0].reason.contains("adopted"), "{d:?}");
    assert_eq!(commands(d), [create(1, false)]);
    assert!(e.knows(T));
    // Adopting it again changes nothing; its events, if they come late, neither.
    assert!(e.adopt(now, &found).is_empty());
    assert!(e
        .event(now, &ev(EventKind::Established, FIRST, SERVER))
        .is_empty());
    // With no subflow at all, every path gets one.
    e.forget(T);
    assert!(!e.knows(T));
    let bare = Adopted {
        subflows: Vec::new(),
        ..found.clone()
    };
    assert_eq!(
        commands(e.adopt(now, &bare)),
        [create(1, false), create(2, false)]
    );
    // A server-side connection gets the announcements (its own address aside).
    e.forget(T);
    let server = Adopted {
        server_side: true,
        ..found
    };
    assert_eq!(
        commands(e.adopt(now, &server)),
        [Command::Announce {
            token: T,
            id: 2,
            address: "198.18.1.1".parse().unwrap()
        }]
    );
}
