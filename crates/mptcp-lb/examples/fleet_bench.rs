//! The fleet benchmark behind `perf/lb/run.sh` (root; not a test): the same fleet, side
//! by side in one run, with no help, with join ports (the C flag and VIP:port
//! announced) and with token steering. Prints a Markdown table and, with `--json
//! FILE`, writes the figures.
//!
//! Per scenario: 60 connections (6 at a time) that each send 256 KiB and wait (3.5 s at
//! most) for an established subflow on the second path: the share that got one, and
//! the join latency (connect to that subflow, median and p90); then 3 connections, one
//! at a time, of 4 s of upload: the median per-connection throughput against a path's
//! rate; the host's CPU (every namespace: client, balancer, backends, and whatever
//! else runs: the load average is printed) per GB and per 10k connections from
//! /proc/stat; with steering, registry datagrams per connection and the share of
//! joins steered on their first SYN.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_lb::daemon::{Options, Source};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, TcpState};
use mptcp_testnet::{Balancer, ClientEndpoints, Family, Fleet};

const PORT: u16 = 80;
const RATE_MBIT: u32 = 50;
const CONNS: usize = 60;
const PARALLEL: usize = 6;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scenario {
    NoHelp,
    JoinPorts,
    Steering,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::NoHelp => "no help (stock client)",
            Scenario::JoinPorts => "C flag + VIP:join-port (mptcp pm + mptcp lb)",
            Scenario::Steering => "token steering (stock client, mptcp lb --steer-tokens)",
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    scenario: &'static str,
    balancer: String,
    multipath_share: f64,
    join_ms_median: Option<f64>,
    join_ms_p90: Option<f64>,
    no_token_resets: u64,
    aggregate_mbit: f64,
    aggregate_vs_one_path: f64,
    host_cpu_s_per_gb: f64,
    host_cpu_s_per_10k_conns: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_datagrams_per_conn: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steered_first_try_share: Option<f64>,
}

/// Busy CPU seconds of the whole host (all namespaces share the kernel).
fn cpu_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = cpu
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

struct Bench {
    fleet: Fleet,
    scenario: Scenario,
    stop: AtomicBool,
    reload: AtomicBool,
    state: PathBuf,
}

impl Bench {
    fn registry(&self) -> SocketAddr {
        SocketAddr::new(
            self.fleet.backend(0).unwrap().gateway(Family::V4).unwrap(),
            7010,
        )
    }

    fn lb_config(&self) -> mptcp_lb::Config {
        let mut text = format!(
            "mode = \"{}\"\nvip = [\"{}:{PORT}\"]\n",
            if self.fleet.kind() == Balancer::Nat {
                "nat"
            } else {
                "route"
            },
            self.fleet.vip4()
        );
        if self.scenario == Scenario::Steering {
            text.push_str(&format!(
                "registry = \"{}\"\nkey = \"{}\"\n",
                self.registry(),
                self.state.join("key").display()
            ));
        }
        for (k, b) in self.fleet.backends().iter().enumerate() {
            text.push_str(&format!(
                "[[backend]]\naddress = \"{}\"\n",
                b.addr(Family::V4).unwrap()
            ));
            if self.scenario == Scenario::JoinPorts {
                text.push_str(&format!("join_port = {}\n", 20000 + k));
            }
        }
        mptcp_lb::Config::from_toml(&text, "bench").unwrap()
    }

    fn pm(&self, k: usize) {
        let mut config = mptcp_pm::Config {
            role: mptcp_pm::Role::Server,
            ..mptcp_pm::Config::default()
        };
        config.exclude.clear();
        config.server.announce_own = false;
        match self.scenario {
            Scenario::JoinPorts => {
                config.server.vips = vec![self.fleet.vip4().into()];
                config.server.join_port = Some(20000 + k as u16);
            }
            Scenario::Steering => {
                config.server.lb_registry = Some(self.registry());
                config.server.lb_key = Some(self.state.join("key"));
            }
            Scenario::NoHelp => return,
        }
        let mut opts = mptcp_pm::Options::new(config);
        opts.state_dir = self.state.join(format!("pm{k}"));
        let mut log = |_r: mptcp_pm::Report| {};
        let mut d = mptcp_pm::Daemon::start(opts, &mut log).expect("mptcp pm");
        d.run(&self.stop, &mut log).expect("mptcp pm");
        d.shutdown(&mut log).unwrap();
    }

    fn sink(&self) {
        let l = ListenConfig::new()
            .listen(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), PORT))
            .unwrap();
        l.set_nonblocking(true).unwrap();
        std::thread::scope(|s| {
            while !self.stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        s.spawn(move || {
                            c.set_nonblocking(false).unwrap();
                            let mut buf = vec![0u8; 256 * 1024];
                            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                            let _ = c.write_all(b"k");
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
    }

    /// One connection: bytes sent, and when (if) its second path was established.
    fn conn(&self, bytes: usize, for_time: Option<Duration>) -> (usize, Option<Duration>) {
        let second: IpAddr = self.fleet.client_addr(1, Family::V4).unwrap();
        self.fleet
            .client()
            .run(|| {
                let t0 = Instant::now();
                let mut c: TcpStream = Dialer::new()
                    .dial(SocketAddr::new(self.fleet.vip4().into(), PORT))
                    .unwrap();
                let joined = |c: &TcpStream| {
                    c.subflows().unwrap_or_default().iter().any(|s| {
                        s.local.map(|l| l.ip()) == Some(second)
                            && s.tcp.state == TcpState::Established
                    })
                };
                let chunk = vec![7u8; 64 * 1024];
                let mut sent = 0;
                let mut join = None;
                loop {
                    let done = match for_time {
                        Some(t) => t0.elapsed() >= t,
                        None => sent >= bytes,
                    };
                    if done {
                        break;
                    }
                    c.write_all(&chunk).unwrap();
                    sent += chunk.len();
                    if join.is_none() && joined(&c) {
                        join = Some(t0.elapsed());
                    }
                }
                let deadline = t0 + Duration::from_millis(3500);
                while join.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                    if joined(&c) {
                        join = Some(t0.elapsed());
                    }
                }
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let _ = c.read(&mut [0u8; 1]);
                (sent, join)
            })
            .unwrap()
    }
}

fn pct(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * p).round() as usize])
}

fn run(kind: Balancer, scenario: Scenario) -> Figures {
    let fleet = Fleet::builder()
        .balancer(kind)
        .rate_mbit(RATE_MBIT)
        .vip_on_backends(true)
        .client_endpoints(if scenario == Scenario::JoinPorts {
            ClientEndpoints::Fullmesh
        } else {
            ClientEndpoints::Subflow
        })
        .build()
        .expect("the fleet (root, iproute2, nftables)");
    let state = std::env::temp_dir().join(format!("mptcp-lb-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("key"), b"the fleet benchmark's shared key").unwrap();
    let b = Arc::new(Bench {
        fleet,
        scenario,
        stop: AtomicBool::new(false),
        reload: AtomicBool::new(false),
        state,
    });
    let no_token = |b: &Bench| -> u64 {
        b.fleet
            .backends()
            .iter()
            .map(|x| x.netns().counters().unwrap().mptcp("MPJoinNoTokenFound"))
            .sum()
    };
    std::thread::scope(|s| {
        for be in b.fleet.backends() {
            let k = be.index();
            let b2 = &b;
            s.spawn(move || be.netns().run(|| b2.pm(k)).unwrap());
            s.spawn(move || be.netns().run(|| b2.sink()).unwrap());
        }
        let lb_status = b.state.join("lb");
        if scenario != Scenario::NoHelp {
            let b2 = &b;
            let status = lb_status.clone();
            s.spawn(move || {
                b2.fleet
                    .balancer()
                    .run(|| {
                        let opts = Options {
                            source: Source::Fixed(b2.lb_config()),
                            state_dir: status,
                            metrics: None,
                        };
                        mptcp_lb::daemon::run(&opts, &b2.stop, &b2.reload, &mut |_| {})
                            .expect("mptcp lb")
                    })
                    .unwrap()
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        let resets0 = no_token(&b);
        let cpu0 = cpu_busy();
        let mut joins: Vec<f64> = Vec::new();
        let mut multipath = 0;
        let mut first_try = 0;
        for _ in 0..CONNS / PARALLEL {
            let batch: Vec<(usize, Option<Duration>)> = std::thread::scope(|s2| {
                let hs: Vec<_> = (0..PARALLEL)
                    .map(|_| s2.spawn(|| b.conn(256 * 1024, None)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (_, j) in batch {
                if let Some(j) = j {
                    multipath += 1;
                    joins.push(j.as_secs_f64() * 1e3);
                    if j < Duration::from_millis(900) {
                        first_try += 1;
                    }
                }
            }
        }
        let conn_cpu = cpu_busy() - cpu0;
        let resets = no_token(&b) - resets0;
        let status: Option<serde_json::Value> =
            std::fs::read_to_string(lb_status.join("status.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        let cpu1 = cpu_busy();
        let t1 = Instant::now();
        let sent: usize = std::thread::scope(|s2| {
            let hs: Vec<_> = (0..4)
                .map(|_| s2.spawn(|| b.conn(0, Some(Duration::from_secs(4))).0))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let secs = t1.elapsed().as_secs_f64();
        let bulk_cpu = cpu_busy() - cpu1;
        b.stop.store(true, Ordering::SeqCst);
        let mbit = sent as f64 * 8.0 / secs / 1e6;
        let figures = Figures {
            scenario: scenario.name(),
            balancer: kind.to_string(),
            multipath_share: multipath as f64 / CONNS as f64,
            join_ms_median: pct(&mut joins.clone(), 0.5),
            join_ms_p90: pct(&mut joins, 0.9),
            no_token_resets: resets,
            aggregate_mbit: mbit,
            aggregate_vs_one_path: mbit / f64::from(RATE_MBIT),
            host_cpu_s_per_gb: bulk_cpu / (sent as f64 / 1e9),
            host_cpu_s_per_10k_conns: conn_cpu / CONNS as f64 * 1e4,
            registry_datagrams_per_conn: status
                .as_ref()
                .and_then(|s| s["steering"]["accepted_messages"].as_f64())
                .map(|m| m / CONNS as f64),
            steered_first_try_share: (scenario == Scenario::Steering)
                .then(|| first_try as f64 / CONNS as f64),
        };
        figures
    })
}

fn main() {
    let json = std::env::args().skip_while(|a| a != "--json").nth(1);
    let kinds: Vec<Balancer> = if std::env::args().any(|a| a == "--nat") {
        vec![Balancer::Route, Balancer::Nat]
    } else {
        vec![Balancer::Route]
    };
    let mut all = Vec::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| balancer | scenario | multipath | join latency median / p90 | MPJoinNoTokenFound | one connection (2 x {RATE_MBIT} Mbit/s) | host CPU-s per GB | host CPU-s per 10k conns | registry datagrams per conn | joins steered on the first SYN |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for kind in kinds {
        for sc in [Scenario::NoHelp, Scenario::JoinPorts, Scenario::Steering] {
            let f = run(kind, sc);
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ms"));
            println!(
                "| {} | {} | {:.0}% | {} / {} | {} | {:.1} Mbit/s ({:.2}x a path) | {:.2} | {:.1} | {} | {} |",
                f.balancer, f.scenario, f.multipath_share * 100.0, ms(f.join_ms_median), ms(f.join_ms_p90),
                f.no_token_resets, f.aggregate_mbit, f.aggregate_vs_one_path, f.host_cpu_s_per_gb,
                f.host_cpu_s_per_10k_conns, f.registry_datagrams_per_conn.map_or("-".into(), |v| format!("{v:.2}")),
                f.steered_first_try_share.map_or("-".into(), |v| format!("{:.0}%", v * 100.0)),
            );
            all.push(f);
        }
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&all).unwrap()).unwrap();
    }
}
