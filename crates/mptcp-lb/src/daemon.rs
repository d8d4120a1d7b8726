//! The loop behind `mptcp lb run`: start, re-read the configuration on request
//! (SIGHUP), write the status file, clean up on stop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::balancer::{Balancer, Error, Status};
use crate::config::Config;
use crate::steering::{SteeringStatus, TokenSteeringRuntime};

/// Where the status file goes by default.
pub const DEFAULT_STATE_DIR: &str = "/run/mptcp-lb";

/// How often the status file's counters are refreshed (token steering).
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How long the loop sleeps between looks at its flags.
const TICK: Duration = Duration::from_millis(100);

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Fixed (the command line): a reload re-applies it.
    Fixed(Config),
    /// A file, read again on every reload.
    File(PathBuf),
}

impl Source {
    fn load(&self) -> Result<Config, Error> {
        match self {
            Source::Fixed(c) => Ok(c.clone()),
            Source::File(p) => Config::from_file(p).map_err(|e| Error::Refused(e.0)),
        }
    }
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration.
    pub source: Source,
    /// Where `status.json` is written.
    pub state_dir: PathBuf,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Rules applied at start.
    Started {
        /// The state.
        status: Status,
    },
    /// A new configuration applied.
    Reloaded {
        /// The state.
        status: Status,
    },
    /// A new configuration refused; the old one stays in force.
    ReloadFailed {
        /// Why.
        error: String,
    },
    /// Rules removed.
    Stopped,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backends = |s: &Status| {
            s.backends
                .iter()
                .map(|b| {
                    format!(
                        "{}{}{}",
                        b.address,
                        b.join_port
                            .map(|p| format!(" join {p}"))
                            .unwrap_or_default(),
                        if b.state == "draining" {
                            " draining"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Event::Started { status } => write!(
                f,
                "balancing {} ({} mode{}) over {}",
                status
                    .vips
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                status.mode,
                match (status.mode, status.own_routes.is_empty()) {
                    (crate::Mode::Nat, _) => ", dnat by jhash",
                    (_, true) => ", the operator's ECMP route",
                    (_, false) => ", own ECMP route",
                },
                backends(status)
            ),
            Event::Reloaded { status } => {
                write!(f, "reloaded: {}", backends(status))?;
                for w in &status.warnings {
                    write!(f, "; warning: {w}")?;
                }
                Ok(())
            }
            Event::ReloadFailed { error } => write!(f, "reload refused, old rules kept: {error}"),
            Event::Stopped => f.write_str("stopped: rules, routes and table removed"),
        }
    }
}

/// What `status.json` holds: the balancer's state and, with token steering, its
/// counters.
#[derive(Debug, Serialize)]
struct StatusFile<'a> {
    #[serde(flatten)]
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    steering: Option<SteeringStatus>,
}

fn write_status(
    dir: &std::path::Path,
    status: &Status,
    steering: Option<&TokenSteeringRuntime>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = StatusFile {
        status,
        steering: steering.map(TokenSteeringRuntime::status),
    };
    let tmp = dir.join("status.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap_or_default())?;
    std::fs::rename(tmp, dir.join("status.json"))
}

/// The interfaces token steering runs on: those configured, else every interface
/// but `lo` and those towards backends.
fn ingress(balancer: &Balancer, steering: &crate::config::Steering) -> Result<Vec<String>, Error> {
    if !steering.ingress.is_empty() {
        return Ok(steering.ingress.clone());
    }
    let towards_backends = balancer.backend_devices()?;
    Ok(crate::apply::interfaces()?
        .into_iter()
        .filter(|i| i != "lo" && !towards_backends.contains(i))
        .collect())
}

fn start_steering(balancer: &Balancer) -> Result<Option<TokenSteeringRuntime>, Error> {
    let Some(s) = &balancer.config().steering else {
        return Ok(None);
    };
    let interfaces = ingress(balancer, s)?;
    if interfaces.is_empty() {
        return Err(Error::Refused(
            "token steering: no client-facing interface (give ingress = [...])".into(),
        ));
    }
    TokenSteeringRuntime::start(
        s,
        &balancer.config().vip_addrs(),
        balancer.slots(),
        &interfaces,
    )
    .map(Some)
}

/// Reads the status a running balancer wrote.
///
/// # Errors
/// When no balancer runs (no file) or the file is not ours.
pub fn read_status(dir: &std::path::Path) -> Result<serde_json::Value, String> {
    let p = dir.join("status.json");
    let text = std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "no balancer status at {} ({e}): is `mptcp lb run` running?",
            p.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs until `stop` is raised; `reload` raised re-reads the configuration.
///
/// # Errors
/// When the first configuration cannot be applied (nothing stays applied then).
pub fn run(
    opts: &Options,
    stop: &AtomicBool,
    reload: &AtomicBool,
    log: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let mut balancer = Balancer::start(opts.source.load()?)?;
    let steering = match start_steering(&balancer) {
        Ok(s) => s,
        Err(e) => {
            balancer.shutdown();
            return Err(e);
        }
    };
    let mut metrics = match opts.metrics {
        None => None,
        Some(addr) => {
            let m = crate::metrics::Metrics::new().map_err(|e| Error::Refused(e.to_string()));
            let m = m.and_then(|m| {
                crate::metrics::serve(addr, m.registry().clone()).map_err(Error::Refused)?;
                Ok(m)
            });
            match m {
                Ok(m) => Some(m),
                Err(e) => {
                    drop(steering);
                    balancer.shutdown();
                    return Err(e);
                }
            }
        }
    };
    let status = balancer.status();
    let _ = write_status(&opts.state_dir, &status, steering.as_ref());
    if let Some(m) = &mut metrics {
        m.update(&status, steering.as_ref().map(|s| s.status()).as_ref());
    }
    log(Event::Started { status });
    let mut last_write = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        if reload.swap(false, Ordering::SeqCst) {
            let next = opts.source.load().and_then(|c| {
                if c.steering != balancer.config().steering {
                    return Err(Error::Refused(
                        "token steering settings changed: restart the balancer for that".into(),
                    ));
                }
                balancer.reload(c)
            });
            if let Some(m) = &metrics {
                m.reloaded(next.is_ok());
            }
            match next {
                Ok(()) => {
                    if let Some(s) = &steering {
                        s.set_backends(balancer.slots());
                    }
                    let status = balancer.status();
                    let _ = write_status(&opts.state_dir, &status, steering.as_ref());
                    log(Event::Reloaded { status });
                }
                Err(e) => log(Event::ReloadFailed {
                    error: e.to_string(),
                }),
            }
        }
        if last_write.elapsed() >= STATUS_EVERY {
            let status = balancer.status();
            if steering.is_some() {
                let _ = write_status(&opts.state_dir, &status, steering.as_ref());
            }
            if let Some(m) = &mut metrics {
                m.update(&status, steering.as_ref().map(|s| s.status()).as_ref());
            }
            last_write = std::time::Instant::now();
        }
    }
    drop(steering);
    balancer.shutdown();
    let _ = std::fs::remove_file(opts.state_dir.join("status.json"));
    log(Event::Stopped);
    Ok(())
}
