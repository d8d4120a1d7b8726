//! `mptcp demo`: a multipath network in namespaces, a TCP transfer, an MPTCP
//! transfer over every path, and a path cut mid-transfer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mptcp_testnet::TestNet;
use serde::Serialize;

use crate::client::{Cancel, Client, ClientOptions};
use crate::report::{Interval, Summary};
use crate::server::{Server, DEFAULT_PORT};

/// The demo's settings.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Number of paths between client and server (1-8).
    pub paths: usize,
    /// Rate of each path, Mbit/s.
    pub rate_mbit: u32,
    /// Length of each act, seconds.
    pub seconds: u64,
    /// Interval of the live view.
    pub interval: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            paths: 2,
            rate_mbit: 50,
            seconds: 5,
            interval: Duration::from_secs(1),
        }
    }
}

/// The three acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// One plain TCP connection.
    Tcp,
    /// One MPTCP connection over every path.
    Mptcp,
    /// One MPTCP connection; path 0 is cut a third of the way in.
    Failover,
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Act::Tcp => "TCP",
            Act::Mptcp => "MPTCP",
            Act::Failover => "failover",
        })
    }
}

/// What happens, as it happens, for a live view.
#[derive(Debug)]
pub enum DemoEvent<'a> {
    /// The network is up.
    NetworkReady {
        /// A one-line description of it.
        description: String,
    },
    /// An act begins.
    ActStarted {
        /// Which.
        act: Act,
    },
    /// An interval of an act.
    Interval {
        /// Which act.
        act: Act,
        /// The figures.
        interval: &'a Interval,
    },
    /// A path was cut.
    PathCut {
        /// Which path.
        path: usize,
        /// Seconds into the act.
        at_s: f64,
    },
    /// An act ended.
    ActDone {
        /// Which.
        act: Act,
        /// Its summary.
        summary: &'a Summary,
    },
}

/// The demo's result.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// Number of paths.
    pub paths: usize,
    /// Rate of each path, Mbit/s.
    pub rate_mbit: u32,
    /// Sum of the link rates, Mbit/s.
    pub sum_of_links_mbit: u64,
    /// The TCP act.
    pub tcp: Summary,
    /// The MPTCP act.
    pub mptcp: Summary,
    /// The failover act.
    pub failover: Summary,
    /// MPTCP throughput over TCP throughput.
    pub mptcp_over_tcp: f64,
    /// MPTCP throughput as a share of the sum of the link rates.
    pub mptcp_share_of_links: f64,
    /// Share of the MPTCP act's bytes carried by each path.
    pub path_shares: Vec<f64>,
    /// The path cut in the failover act.
    pub path_cut: usize,
    /// When, seconds into the act.
    pub cut_at_s: f64,
    /// The longest stall seen by the receiver in the failover act, ms.
    pub failover_stall_ms: f64,
    /// Every byte of every act arrived intact.
    pub data_verified: bool,
    /// Every path carried at least half its fair share in the MPTCP act.
    pub all_paths_used: bool,
    /// What went wrong, if anything (the demo then fails).
    pub problems: Vec<String>,
}

impl DemoReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why the demo could not run.
#[derive(Debug)]
pub enum DemoError {
    /// The test network could not be built (not root, a tool missing...).
    Network(mptcp_testnet::Error),
    /// A transfer failed.
    Io(std::io::Error),
    /// Invalid options.
    Invalid(String),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Network(e) => write!(f, "cannot build the test network: {e}"),
            DemoError::Io(e) => write!(f, "transfer failed: {e}"),
            DemoError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DemoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DemoError::Network(e) => Some(e),
            DemoError::Io(e) => Some(e),
            DemoError::Invalid(_) => None,
        }
    }
}

impl From<mptcp_testnet::Error> for DemoError {
    fn from(e: mptcp_testnet::Error) -> Self {
        DemoError::Network(e)
    }
}

impl From<std::io::Error> for DemoError {
    fn from(e: std::io::Error) -> Self {
        DemoError::Io(e)
    }
}

/// Runs the demo. The network lives in namespaces created here and removed
/// when this returns, also on error; set `cancel` (from a Ctrl-C handler) to
/// stop early and clean up.
pub fn run(
    opts: &DemoOptions,
    cancel: Cancel<'_>,
    on_event: &mut dyn FnMut(DemoEvent<'_>),
) -> Result<DemoReport, DemoError> {
    if opts.seconds == 0 || opts.seconds > 600 {
        return Err(DemoError::Invalid(format!(
            "--seconds {}: use 1 to 600",
            opts.seconds
        )));
    }
    if opts.rate_mbit == 0 || opts.rate_mbit > 10_000 {
        return Err(DemoError::Invalid(format!(
            "--rate {}: use 1 to 10000 Mbit/s",
            opts.rate_mbit
        )));
    }
    let net = TestNet::builder()
        .paths(opts.paths)
        .rate_mbit(opts.rate_mbit)
        .build()?;
    on_event(DemoEvent::NetworkReady {
        description: net.to_string(),
    });
    let server = net
        .server()
        .run(|| Server::bind(("0.0.0.0", DEFAULT_PORT), false))??;
    let server_ip = net
        .server()
        .addr(0)
        .ok_or_else(|| DemoError::Invalid("the server has no IPv4 address".into()))?;
    let addr = SocketAddr::new(server_ip, DEFAULT_PORT);
    let stop = AtomicBool::new(false);

    std::thread::scope(|scope| {
        let serving = scope.spawn(|| server.serve(None, Some(&stop), &|_| {}));
        let result = acts(&net, addr, opts, cancel, on_event);
        stop.store(true, Ordering::Relaxed);
        let served = serving.join();
        let report = result?;
        match served {
            Ok(r) => r?,
            Err(_) => return Err(DemoError::Invalid("the bench server panicked".into())),
        }
        Ok(report)
    })
}

fn acts(
    net: &TestNet,
    addr: SocketAddr,
    opts: &DemoOptions,
    cancel: Cancel<'_>,
    on_event: &mut dyn FnMut(DemoEvent<'_>),
) -> Result<DemoReport, DemoError> {
    let duration = Duration::from_secs(opts.seconds);
    let base = ClientOptions {
        addr,
        duration: Some(duration),
        bytes: None,
        reverse: false,
        tcp: false,
        interval: opts.interval,
        verify: true,
    };
    let mut act = |act: Act, o: ClientOptions, cut: Option<(usize, Duration)>| {
        on_event(DemoEvent::ActStarted { act });
        let client = net.client().run(|| Client::connect(&o))??;
        let start = Instant::now();
        let mut cut_at = None;
        let summary = std::thread::scope(|scope| {
            let cutter = cut.map(|(path, after)| {
                scope.spawn(move || {
                    // Sleep in small steps, so an early end does not wait.
                    while start.elapsed() < after
                        && !cancel.is_some_and(|c| c.load(Ordering::Relaxed))
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    net.path_down(path).map(|()| (path, start.elapsed()))
                })
            });
            let summary = client.run(cancel, |i| {
                on_event(DemoEvent::Interval { act, interval: i })
            });
            if let Some(c) = cutter {
                match c.join() {
                    Ok(Ok(done)) => cut_at = Some(done),
                    Ok(Err(e)) => return Err(DemoError::Network(e)),
                    Err(_) => return Err(DemoError::Invalid("path cutter panicked".into())),
                }
            }
            Ok(summary?)
        })?;
        if let Some((path, at)) = cut_at {
            on_event(DemoEvent::PathCut {
                path,
                at_s: at.as_secs_f64(),
            });
        }
        on_event(DemoEvent::ActDone {
            act,
            summary: &summary,
        });
        Ok::<_, DemoError>((summary, cut_at))
    };

    let (tcp, _) = act(
        Act::Tcp,
        ClientOptions {
            tcp: true,
            ..base.clone()
        },
        None,
    )?;
    let (mptcp, _) = act(Act::Mptcp, base.clone(), None)?;
    // Failover: a fixed amount, about the act's length at full speed, so
    // the transfer must finish on the paths that are left.
    let sum_mbit = u64::from(opts.rate_mbit) * opts.paths as u64;
    let failover_bytes = sum_mbit * 1_000_000 / 8 * opts.seconds * 2 / 3;
    let cut_after = duration / 3;
    let (failover, cut) = act(
        Act::Failover,
        ClientOptions {
            duration: None,
            bytes: Some(failover_bytes),
            ..base
        },
        Some((0, cut_after)),
    )?;
    let (path_cut, cut_at) = cut.unwrap_or((0, cut_after));

    let client_ips: Vec<Option<IpAddr>> = (0..opts.paths).map(|i| net.client().addr(i)).collect();
    let total: u64 = mptcp.subflow_bytes.iter().map(|s| s.bytes).sum();
    let path_shares: Vec<f64> = client_ips
        .iter()
        .map(|ip| {
            let b: u64 = mptcp
                .subflow_bytes
                .iter()
                .filter(|s| s.local.map(|a| a.ip()) == *ip)
                .map(|s| s.bytes)
                .sum();
            b as f64 / total.max(1) as f64
        })
        .collect();
    let fair = 1.0 / opts.paths as f64;
    let all_paths_used = path_shares.iter().all(|s| *s >= fair / 2.0);
    let data_verified = [&tcp, &mptcp, &failover]
        .iter()
        .all(|s| s.verified == Some(true))
        && failover.bytes == failover_bytes;

    let mut problems = Vec::new();
    if !mptcp.mptcp_stayed_on {
        problems.push(format!(
            "the MPTCP connection was {} at the end",
            mptcp.status_end
        ));
    }
    if opts.paths > 1 && !all_paths_used {
        problems.push(format!(
            "MPTCP did not use every path: shares {:?}",
            path_shares
        ));
    }
    if !data_verified {
        problems.push("data was lost or corrupted".into());
    }
    Ok(DemoReport {
        paths: opts.paths,
        rate_mbit: opts.rate_mbit,
        sum_of_links_mbit: sum_mbit,
        mptcp_over_tcp: mptcp.mbit_per_s / tcp.mbit_per_s.max(1e-9),
        mptcp_share_of_links: mptcp.mbit_per_s / sum_mbit.max(1) as f64,
        path_shares,
        path_cut,
        cut_at_s: cut_at.as_secs_f64(),
        failover_stall_ms: failover.max_stall_ms,
        data_verified,
        all_paths_used,
        problems,
        tcp,
        mptcp,
        failover,
    })
}
