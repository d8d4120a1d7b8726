//! What one scrape reads from one network namespace.

use mptcp_netlink::{sysctl, Connection, Counters, Endpoint, Limits, PathManager};

/// The sysctls exported in `mptcp_sysctl_info`, when the kernel has them.
pub const SYSCTLS: [&str; 6] = [
    "enabled",
    "path_manager",
    "pm_type",
    "scheduler",
    "checksum_enabled",
    "blackhole_timeout",
];

/// One namespace's MPTCP state at one moment. Each part that could not be read is
/// `Err` with the reason; the others are exported anyway.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The `MPTcpExt` counters.
    pub counters: Result<Counters, String>,
    /// The MPTCP sockets (connections and listeners) with their subflows.
    pub connections: Result<Vec<Connection>, String>,
    /// The path manager's endpoints.
    pub endpoints: Result<Vec<Endpoint>, String>,
    /// The path manager's limits.
    pub limits: Result<Limits, String>,
    /// The [`SYSCTLS`] this kernel has, with their values.
    pub sysctls: Result<Vec<(String, String)>, String>,
}

impl Snapshot {
    /// Reads the calling thread's network namespace: one counters read, one
    /// `sock_diag` dump, one endpoint dump, the limits and the sysctls. `pm` is the
    /// path-manager handle kept between scrapes; it is opened (again) when `None`.
    pub fn take(pm: &mut Option<PathManager>) -> Snapshot {
        let counters = Counters::read().map_err(|e| e.to_string());
        let connections = mptcp_netlink::connections().map_err(|e| e.to_string());
        if pm.is_none() {
            match PathManager::open() {
                Ok(opened) => *pm = Some(opened),
                Err(e) => {
                    let e = e.to_string();
                    return Snapshot {
                        counters,
                        connections,
                        endpoints: Err(e.clone()),
                        limits: Err(e),
                        sysctls: read_sysctls(),
                    };
                }
            }
        }
        let (endpoints, limits) = match pm.as_ref() {
            Some(handle) => (
                handle.endpoints().map_err(|e| e.to_string()),
                handle.limits().map_err(|e| e.to_string()),
            ),
            None => unreachable_pm(),
        };
        if endpoints.is_err() && limits.is_err() {
            // A broken socket: open a fresh one next time.
            *pm = None;
        }
        Snapshot {
            counters,
            connections,
            endpoints,
            limits,
            sysctls: read_sysctls(),
        }
    }
}

/// `pm` was just set: never taken, but spelled out instead of a panic.
fn unreachable_pm() -> (Result<Vec<Endpoint>, String>, Result<Limits, String>) {
    let e = "path manager handle missing".to_string();
    (Err(e.clone()), Err(e))
}

fn read_sysctls() -> Result<Vec<(String, String)>, String> {
    if !std::path::Path::new(sysctl::DIR).exists() {
        return Err(format!("no {}: kernel without MPTCP", sysctl::DIR));
    }
    Ok(SYSCTLS
        .iter()
        .filter_map(|name| sysctl::get(name).ok().map(|v| (name.to_string(), v)))
        .collect())
}

impl Snapshot {
    /// A snapshot where every part failed for `reason`.
    pub fn failed(reason: &str) -> Snapshot {
        let e = reason.to_string();
        Snapshot {
            counters: Err(e.clone()),
            connections: Err(e.clone()),
            endpoints: Err(e.clone()),
            limits: Err(e.clone()),
            sysctls: Err(e),
        }
    }
}
