//! Token steering on the balancer: the tc program of `mptcp-steer` on the
//! client-facing interfaces, and the registry the backends publish their tokens to,
//! kept in step with the backends of the configuration.
//!
//! The registry runs on its own thread with a current-thread tokio runtime (the rest
//! of the balancer is a plain loop); the token map sits behind a mutex shared by the
//! registry (updates) and the balancer (backends removed, counters read).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use mptcp_steer::bpf::TokenSteering;
use mptcp_steer::registry::{Key, Registry, Update};
use mptcp_steer::{RegistryServer, UpdateSink};
use serde::Serialize;

use crate::balancer::Error;
use crate::config::Steering;
use crate::rules::{mark, Slot};

/// What the steering has done, for the status file and `mptcp lb status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SteeringStatus {
    /// Where the registry listens.
    pub registry: Option<SocketAddr>,
    /// The interfaces the program runs on.
    pub interfaces: Vec<String>,
    /// Tokens in the map.
    pub tokens: usize,
    /// The registry's heap per token, in bytes (the BPF map's entry is 8 bytes of
    /// key and value plus the kernel's hash-table overhead).
    pub registry_bytes_per_token: usize,
    /// MP_JOIN SYNs to a VIP seen by the program.
    pub joins_seen: u64,
    /// Joins marked for their backend.
    pub steered: u64,
    /// Joins dropped: no backend owns their token (yet: the client retransmits).
    pub dropped_unknown: u64,
    /// Registry datagrams accepted.
    pub accepted_messages: u64,
    /// Operations in them.
    pub accepted_ops: u64,
    /// Datagrams refused, by reason.
    pub refused: BTreeMap<&'static str, u64>,
}

struct MapSink(Arc<Mutex<TokenSteering>>);

impl UpdateSink for MapSink {
    fn apply(&mut self, update: &Update) -> std::io::Result<()> {
        lock(&self.0).apply(update)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running steering: program, map, registry thread.
pub struct TokenSteeringRuntime {
    map: Arc<Mutex<TokenSteering>>,
    registry: Arc<Mutex<Registry>>,
    addr: SocketAddr,
    interfaces: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TokenSteeringRuntime {
    /// Stops the registry, then (the last handle on the program going) detaches the
    /// program from every interface.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for TokenSteeringRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSteeringRuntime")
            .field("registry", &self.addr)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl TokenSteeringRuntime {
    /// Loads the program, attaches it to `interfaces`, fills the VIPs, binds the
    /// registry and starts its thread.
    ///
    /// # Errors
    /// The key file, the program (permissions, verifier), an interface, the
    /// registry's address: one line each.
    pub fn start(
        config: &Steering,
        vips: &[IpAddr],
        slots: &BTreeMap<IpAddr, Slot>,
        interfaces: &[String],
    ) -> Result<TokenSteeringRuntime, Error> {
        let refused = |e: &dyn std::fmt::Display| Error::Refused(e.to_string());
        let key = Key::from_file(&config.key).map_err(|e| refused(&e))?;
        let registry = Registry::new(key, slots.iter().map(|(a, s)| (*a, mark(*s))))
            .map_err(|e| refused(&e))?;
        let mut map = TokenSteering::load().map_err(|e| refused(&e))?;
        for vip in vips {
            map.add_vip(*vip).map_err(|e| refused(&e))?;
        }
        for i in interfaces {
            map.attach(i).map_err(|e| refused(&e))?;
        }
        let map = Arc::new(Mutex::new(map));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| refused(&format!("cannot start the registry's runtime: {e}")))?;
        let server = rt
            .block_on(RegistryServer::bind(config.registry, registry))
            .map_err(|e| refused(&e))?;
        let registry = server.registry();
        let sink = MapSink(Arc::clone(&map));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mptcp-lb-registry".into())
            .spawn(move || {
                rt.block_on(async {
                    tokio::select! {
                        r = server.run(sink) => if let Err(e) = r {
                            tracing::error!(error = %e, "token registry stopped");
                        },
                        _ = stopped => {}
                    }
                })
            })
            .map_err(|e| refused(&format!("cannot start the registry thread: {e}")))?;
        Ok(TokenSteeringRuntime {
            map,
            registry,
            addr: config.registry,
            interfaces: interfaces.to_vec(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Backends added get their mark; backends removed lose their tokens (their
    /// joins are dropped from now on, as they would be reset).
    pub fn set_backends(&self, slots: &BTreeMap<IpAddr, Slot>) {
        let mut reg = lock(&self.registry);
        let old: Vec<IpAddr> = reg.backends().map(|(a, _)| a).collect();
        for a in old.iter().filter(|a| !slots.contains_key(a)) {
            for u in reg.remove_backend(*a).unwrap_or_default() {
                if let Err(e) = lock(&self.map).apply(&u) {
                    tracing::warn!(error = %e, "token map update failed");
                }
            }
        }
        for (a, s) in slots {
            if !old.contains(a) {
                if let Err(e) = reg.add_backend(*a, mark(*s)) {
                    tracing::warn!(backend = %a, error = %e, "registry backend not added");
                }
            }
        }
    }

    /// Counters now.
    pub fn status(&self) -> SteeringStatus {
        let (stats, tokens, bytes) = {
            let reg = lock(&self.registry);
            let n = reg.len();
            (
                reg.stats(),
                n,
                reg.memory_bytes().checked_div(n).unwrap_or(0),
            )
        };
        let prog = lock(&self.map).stats().unwrap_or_default();
        SteeringStatus {
            registry: Some(self.addr),
            interfaces: self.interfaces.clone(),
            tokens,
            registry_bytes_per_token: bytes,
            joins_seen: prog.joins_seen,
            steered: prog.steered,
            dropped_unknown: prog.dropped_unknown,
            accepted_messages: stats.accepted_messages,
            accepted_ops: stats.accepted_ops,
            refused: BTreeMap::from([
                ("bad_mac", stats.bad_mac),
                ("replayed", stats.replayed),
                ("stale", stats.stale),
                ("unknown_backend", stats.unknown_backend),
                ("malformed", stats.malformed),
            ]),
        }
    }
}
