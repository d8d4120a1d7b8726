//! Giving a client's in-kernel connections back the subflows they lost.
//!
//! The kernel's in-kernel path manager opens a subflow from each of its endpoints
//! once per connection: when that subflow dies while the endpoint stays (a reset, a
//! middlebox that strips MPTCP, a server that gave up on it), it is never opened
//! again (mptcp_net-next #440). Only the endpoint's removal re-arms it: the kernel
//! then marks the endpoint unused on every connection, and its return makes the
//! kernel open subflows from it again. So a connection that lost every subflow while
//! its paths stayed up waits forever with its data queued; the chaos soak's
//! connections made under the in-kernel path manager did, 70 to 84 of the 91 that
//! failed after a blackout in a 10-minute run.
//!
//! The rule, on a client, every [`CHECK_EVERY`]: an established connection of the
//! in-kernel path manager **lacks** an endpoint when it has no established subflow
//! from the endpoint's address, and either it has no established subflow at all
//! (it is stuck) or it had one from that address before (it is degraded). An
//! endpoint that a connection has lacked for a while is removed and added again, not
//! too often ([`Pace`]: 10 s then at most every 30 s for a stuck connection in the
//! in-kernel mode, 3 s and 10 s for those `--userspace` keeps; 30 s / 120 s and
//! 10 s / 60 s for a degraded one); for the stuck connections one endpoint a
//! round (the one most of them lack): one subflow is what they need. An endpoint
//! that is a moving connection's only path is not re-armed for a degraded one, and
//! for a stuck one only when every candidate is (then the one that strands the
//! fewest): a re-arm closes that connection's last subflow, and if the joins that
//! follow fail (another path stripping MPTCP at that moment, in the soak) it is
//! stuck in turn. A connection
//! gets [`MAX_ATTEMPTS`] re-arms without recovering, then is left alone. The cost:
//! the other connections' subflows from that address close and the kernel opens them
//! again at once (their data is sent again over the others meanwhile), so the
//! intervals are long for a connection that still moves and short for one that
//! cannot, and a connection whose far end is gone cannot make them flap for long
//! (the first version re-armed every endpoint every 10 s through a whole soak phase).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mptcp_netlink::{Connection, Endpoint, EndpointFlags, TcpState};

/// How often a client looks.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How soon and how often endpoints are re-armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// How long a connection with no subflow at all waits before an endpoint is
    /// re-armed for it (the kernel's own joins after an endpoint's return take well
    /// under it).
    pub stuck_after: Duration,
    /// The least time between two re-arms of one endpoint for stuck connections.
    pub stuck_every: Duration,
    /// How long a connection that still has a subflow lacks one from an endpoint it
    /// had before that endpoint is re-armed.
    pub degraded_after: Duration,
    /// The least time between two re-arms of one endpoint for degraded connections.
    pub degraded_every: Duration,
}

impl Pace {
    /// The in-kernel mode: every connection of the host uses the endpoints, and a
    /// re-arm closes their subflows from it, so it waits long. (The soak's first
    /// in-kernel phases lost more transfers than they saved at the `--userspace` pace:
    /// a subflow closed with data queued delays the connection until the kernel sends
    /// that data again, which it does only once another subflow has nothing in
    /// flight.)
    pub(crate) const IN_KERNEL: Pace = Pace {
        stuck_after: Duration::from_secs(10),
        stuck_every: Duration::from_secs(30),
        degraded_after: Duration::from_secs(30),
        degraded_every: Duration::from_secs(120),
    };
    /// `--userspace`, for the connections an in-kernel run left: only those use the
    /// endpoints, and nothing else re-opens their subflows.
    pub(crate) const LEFTOVERS: Pace = Pace {
        stuck_after: Duration::from_secs(3),
        stuck_every: Duration::from_secs(10),
        degraded_after: Duration::from_secs(10),
        degraded_every: Duration::from_secs(60),
    };
}

/// How many re-arms a connection gets without recovering before it is given up on:
/// one whose far end is gone (a server process killed, a connection the server
/// closed meanwhile) never gets a subflow again, and re-arming for it forever would
/// disturb every other connection on those addresses.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// One endpoint to remove and add again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rearm {
    /// The endpoint's id.
    pub id: u8,
    /// Its address.
    pub address: IpAddr,
    /// Connections with no subflow at all that lacked it long enough.
    pub stuck: usize,
    /// Connections with subflows that lacked it long enough.
    pub degraded: usize,
}

/// What the rule remembers between two looks.
#[derive(Debug)]
pub(crate) struct Rearmer {
    pace: Pace,
    /// By connection token: the endpoint ids it has had an established subflow from.
    had: BTreeMap<u32, BTreeSet<u8>>,
    /// By (connection token, endpoint id): since when it has lacked it.
    lacking: BTreeMap<(u32, u8), Instant>,
    /// By endpoint id: when it was last re-armed.
    last: BTreeMap<u8, Instant>,
    /// By connection token: re-arms made for it since it last lacked nothing.
    attempts: BTreeMap<u32, u32>,
}

/// A connection as the rule reads it.
#[derive(Debug, Clone)]
struct Conn {
    token: u32,
    remote_v4: bool,
    /// The local addresses of its established subflows.
    on: BTreeSet<IpAddr>,
}

impl Rearmer {
    pub(crate) fn new(pace: Pace) -> Rearmer {
        Rearmer {
            pace,
            had: BTreeMap::new(),
            lacking: BTreeMap::new(),
            last: BTreeMap::new(),
            attempts: BTreeMap::new(),
        }
    }

    /// The endpoints to re-arm now, given a `sock_diag` dump and the kernel's
    /// endpoints, of which only those in `ours` are touched (and only `subflow`
    /// ones: a client's). The endpoints returned are taken as re-armed now.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        conns: &[Connection],
        endpoints: &[Endpoint],
        ours: &BTreeSet<u8>,
    ) -> Vec<Rearm> {
        let endpoints: Vec<(u8, IpAddr)> = endpoints
            .iter()
            .filter(|e| ours.contains(&e.id) && e.flags.contains(EndpointFlags::SUBFLOW))
            .filter(|e| e.port.is_none())
            .map(|e| (e.id, e.address.to_canonical()))
            .collect();
        let conns = client_conns(conns);
        self.step(now, &conns, &endpoints)
    }

    fn step(&mut self, now: Instant, conns: &[Conn], endpoints: &[(u8, IpAddr)]) -> Vec<Rearm> {
        let live: BTreeSet<u32> = conns.iter().map(|c| c.token).collect();
        self.had.retain(|t, _| live.contains(t));
        self.lacking.retain(|(t, _), _| live.contains(t));
        self.attempts.retain(|t, _| live.contains(t));
        // By endpoint: the stuck and the degraded connections that lacked it long
        // enough (and were not given up on).
        let mut due: BTreeMap<u8, (IpAddr, Vec<u32>, Vec<u32>)> = BTreeMap::new();
        for c in conns {
            let had = self.had.entry(c.token).or_default();
            for &(id, address) in endpoints {
                if c.on.contains(&address) {
                    had.insert(id);
                }
            }
            let stuck = c.on.is_empty();
            let mut lacks_any = false;
            for &(id, address) in endpoints {
                let lacks = address.is_ipv4() == c.remote_v4
                    && !c.on.contains(&address)
                    && (stuck || had.contains(&id));
                if !lacks {
                    self.lacking.remove(&(c.token, id));
                    continue;
                }
                lacks_any = true;
                let since = *self.lacking.entry((c.token, id)).or_insert(now);
                let wait = if stuck {
                    self.pace.stuck_after
                } else {
                    self.pace.degraded_after
                };
                let given_up = self.attempts.get(&c.token).copied().unwrap_or(0) >= MAX_ATTEMPTS;
                if now.duration_since(since) >= wait && !given_up {
                    let e = due
                        .entry(id)
                        .or_insert_with(|| (address, Vec::new(), Vec::new()));
                    if stuck {
                        e.1.push(c.token);
                    } else {
                        e.2.push(c.token);
                    }
                }
            }
            if !lacks_any {
                self.attempts.remove(&c.token);
            }
        }
        let rested = |last: &BTreeMap<u8, Instant>, id: u8, every: Duration| {
            last.get(&id)
                .is_none_or(|&at| now.duration_since(at) >= every)
        };
        // The connections whose every established subflow is from `address`: a
        // re-arm of it closes them all, and they are stuck in turn unless its new
        // joins get through (a soak re-armed path 1 while MPTCP was stripped on
        // path 2: four uploads that moved only over path 1 lost it, the kernel's
        // new joins went partly over path 2 and were reset, every endpoint then
        // counted as used on them, and they waited for the next re-arm past
        // their client's timeout).
        let strands = |address: IpAddr| {
            conns
                .iter()
                .filter(|c| !c.on.is_empty() && c.on.iter().all(|a| *a == address))
                .count()
        };
        // One endpoint for the stuck connections: a subflow from it is all they need
        // (the others then count as degraded). One that is no other connection's
        // only path, then the one most of them lack, then the one that strands the
        // fewest, then the one re-armed longest ago.
        let stuck_pick = due
            .iter()
            .filter(|(id, (_, stuck, _))| {
                !stuck.is_empty() && rested(&self.last, **id, self.pace.stuck_every)
            })
            .max_by_key(|(id, (address, stuck, _))| {
                let stranded = strands(*address);
                (
                    stranded == 0,
                    stuck.len(),
                    std::cmp::Reverse(stranded),
                    std::cmp::Reverse(self.last.get(id).copied()),
                    std::cmp::Reverse(**id),
                )
            })
            .map(|(id, _)| *id);
        // For degraded connections (which still move) only an endpoint that is no
        // connection's only path.
        let picked: Vec<u8> = due
            .iter()
            .filter(|(id, (address, _, degraded))| {
                Some(**id) == stuck_pick
                    || (!degraded.is_empty()
                        && rested(&self.last, **id, self.pace.degraded_every)
                        && strands(*address) == 0)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in picked {
            let Some((address, stuck, degraded)) = due.remove(&id) else {
                continue;
            };
            let stuck = if Some(id) == stuck_pick {
                stuck
            } else {
                Vec::new()
            };
            self.last.insert(id, now);
            for t in stuck.iter().chain(&degraded) {
                *self.attempts.entry(*t).or_default() += 1;
                // It waits its full time again before the next re-arm made for it.
                self.lacking.retain(|&(tok, _), _| tok != *t);
            }
            out.push(Rearm {
                id,
                address,
                stuck: stuck.len(),
                degraded: degraded.len(),
            });
        }
        out
    }
}

/// The established client-side connections of the in-kernel path manager: not
/// fallen back, with the in-kernel limits in their `mptcp_info` (the kernel fills
/// those only for its own path manager's), not accepted from one of the listeners.
fn client_conns(conns: &[Connection]) -> Vec<Conn> {
    let listeners = crate::driver::listeners(conns);
    conns
        .iter()
        .filter(|c| c.state == TcpState::Established && !c.fallback())
        .filter(|c| c.info.as_ref().is_some_and(crate::driver::in_kernel_limits))
        .filter(|c| !crate::driver::accepted(&listeners, c))
        .filter_map(|c| {
            Some(Conn {
                token: c.connection_token()?,
                remote_v4: c.remote.ip().to_canonical().is_ipv4(),
                on: c
                    .subflows
                    .iter()
                    .filter(|s| s.state == TcpState::Established)
                    .map(|s| s.local.ip().to_canonical())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn conn(token: u32, on: &[&str]) -> Conn {
        Conn {
            token,
            remote_v4: true,
            on: on.iter().map(|a| ip(a)).collect(),
        }
    }

    const PACE: Pace = Pace::LEFTOVERS;
    const P0: &str = "198.18.0.1";
    const P1: &str = "198.18.1.1";

    fn endpoints() -> Vec<(u8, IpAddr)> {
        vec![(1, ip(P0)), (2, ip(P1))]
    }

    #[test]
    fn a_stuck_connection_rearms_one_endpoint_a_round_then_is_given_up() {
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        // Seen with both subflows, then with none.
        assert!(r.step(t0, &[conn(7, &[P0, P1])], &endpoints()).is_empty());
        let t1 = t0 + Duration::from_secs(2);
        assert!(r.step(t1, &[conn(7, &[])], &endpoints()).is_empty());
        let got = r.step(t1 + PACE.stuck_after, &[conn(7, &[])], &endpoints());
        assert_eq!(
            got,
            vec![Rearm {
                id: 1,
                address: ip(P0),
                stuck: 1,
                degraded: 0,
            }]
        );
        // Still stuck: it waits PACE.stuck_after again, then the endpoint not yet tried.
        let t2 = t1 + PACE.stuck_after + CHECK_EVERY;
        assert!(r.step(t2, &[conn(7, &[])], &endpoints()).is_empty());
        let got = r.step(t2 + PACE.stuck_after, &[conn(7, &[])], &endpoints());
        assert_eq!(got.iter().map(|x| x.id).collect::<Vec<_>>(), vec![2]);
        // A third round (path 0 rested by now), then given up on.
        let t3 = t1 + PACE.stuck_after + PACE.stuck_every;
        r.step(t3, &[conn(7, &[])], &endpoints());
        let got = r.step(t3 + PACE.stuck_after, &[conn(7, &[])], &endpoints());
        assert_eq!(got.iter().map(|x| x.id).collect::<Vec<_>>(), vec![1]);
        let later = t3 + PACE.stuck_after + PACE.stuck_every * 3;
        r.step(later, &[conn(7, &[])], &endpoints());
        assert!(r
            .step(later + PACE.stuck_after, &[conn(7, &[])], &endpoints())
            .is_empty());
        // Recovered once, it has its attempts back.
        r.step(
            later + PACE.stuck_after,
            &[conn(7, &[P0, P1])],
            &endpoints(),
        );
        assert!(r.attempts.is_empty());
    }

    #[test]
    fn a_stuck_connection_found_so_is_rearmed_without_history() {
        // Made before the daemon started (a switch of mode): never seen with subflows.
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        assert!(r.step(t0, &[conn(9, &[])], &endpoints()).is_empty());
        assert_eq!(
            r.step(t0 + PACE.stuck_after, &[conn(9, &[])], &endpoints())
                .len(),
            1
        );
    }

    #[test]
    fn a_degraded_connection_rearms_only_what_it_had_and_slowly() {
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        // Connection 1 had both and lost path 1; connection 2 never had path 1 (the
        // limits, say): nothing is due for it.
        r.step(t0, &[conn(1, &[P0, P1]), conn(2, &[P0])], &endpoints());
        let lost = [conn(1, &[P0]), conn(2, &[P0])];
        assert!(r
            .step(t0 + Duration::from_secs(2), &lost, &endpoints())
            .is_empty());
        let t1 = t0 + Duration::from_secs(2) + PACE.degraded_after;
        assert_eq!(
            r.step(t1, &lost, &endpoints()),
            vec![Rearm {
                id: 2,
                address: ip(P1),
                stuck: 0,
                degraded: 1,
            }]
        );
        // Still lacking it: waits PACE.degraded_after again, and PACE.degraded_every holds.
        let t2 = t1 + PACE.degraded_after + Duration::from_secs(1);
        assert!(r.step(t2, &lost, &endpoints()).is_empty());
        assert_eq!(
            r.step(t1 + PACE.degraded_every, &lost, &endpoints()).len(),
            1
        );
        // Several stuck and degraded at once: one report for the endpoint.
        let mut r = Rearmer::new(PACE);
        r.step(t0, &[conn(1, &[P0, P1]), conn(2, &[P0, P1])], &endpoints());
        let mixed = [conn(1, &[P0]), conn(2, &[])];
        r.step(t0 + Duration::from_secs(1), &mixed, &endpoints());
        let got = r.step(
            t0 + Duration::from_secs(1) + PACE.degraded_after,
            &mixed,
            &endpoints(),
        );
        // Path 0 is connection 1's only path: path 1 serves both, in one re-arm.
        assert_eq!(
            got,
            vec![Rearm {
                id: 2,
                address: ip(P1),
                stuck: 1,
                degraded: 1,
            }]
        );
    }

    #[test]
    fn a_rearm_leaves_alone_an_endpoint_that_is_a_moving_connections_only_path() {
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        // Connection 7 is stuck; connection 8 moves over path 0 only (it lost path 1
        // and lacks it: degraded); connection 9 over both.
        let seen = [conn(7, &[P0, P1]), conn(8, &[P0, P1]), conn(9, &[P0, P1])];
        r.step(t0, &seen, &endpoints());
        let now = [conn(7, &[]), conn(8, &[P0]), conn(9, &[P0, P1])];
        r.step(t0 + CHECK_EVERY, &now, &endpoints());
        // Path 1 for the stuck one (path 0 would close connection 8's only subflow),
        // and it serves the degraded one too.
        let t1 = t0 + CHECK_EVERY + PACE.degraded_after;
        assert_eq!(
            r.step(t1, &now, &endpoints()),
            vec![Rearm {
                id: 2,
                address: ip(P1),
                stuck: 1,
                degraded: 1,
            }]
        );
        // Every endpoint some moving connection's only path: the stuck one still
        // gets one (the one that strands the fewest), a degraded one none.
        let mut r = Rearmer::new(PACE);
        let seen = [
            conn(1, &[P0, P1]),
            conn(2, &[P0, P1]),
            conn(3, &[P0, P1]),
            conn(4, &[P0, P1]),
        ];
        r.step(t0, &seen, &endpoints());
        let now = [conn(1, &[]), conn(2, &[P0]), conn(3, &[P1]), conn(4, &[P1])];
        r.step(t0 + CHECK_EVERY, &now, &endpoints());
        let got = r.step(t0 + CHECK_EVERY + PACE.degraded_after, &now, &endpoints());
        assert_eq!(
            got,
            vec![Rearm {
                id: 1,
                address: ip(P0),
                stuck: 1,
                degraded: 2,
            }],
            "path 0 strands one connection (2), path 1 two (3 and 4, which lack path 0)"
        );
    }

    #[test]
    fn a_subflow_back_in_time_or_a_closed_connection_forgets_the_wait() {
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        r.step(t0, &[conn(1, &[P0, P1])], &endpoints());
        r.step(t0 + Duration::from_secs(1), &[conn(1, &[P0])], &endpoints());
        // The kernel (or a link's return) gave it back before the wait ended.
        r.step(
            t0 + Duration::from_secs(5),
            &[conn(1, &[P0, P1])],
            &endpoints(),
        );
        assert!(r
            .step(
                t0 + Duration::from_secs(12),
                &[conn(1, &[P0])],
                &endpoints()
            )
            .is_empty());
        // Gone: forgotten.
        r.step(t0 + Duration::from_secs(13), &[], &endpoints());
        assert!(r.had.is_empty() && r.lacking.is_empty());
    }

    #[test]
    fn a_connection_of_another_family_is_left_alone() {
        let mut r = Rearmer::new(PACE);
        let t0 = Instant::now();
        let v6 = Conn {
            token: 3,
            remote_v4: false,
            on: BTreeSet::new(),
        };
        r.step(t0, std::slice::from_ref(&v6), &endpoints());
        assert!(r
            .step(t0 + PACE.stuck_after, &[v6], &endpoints())
            .is_empty());
    }
}
