//! The balancer's side: authenticate, refuse replays, keep the token table.

use std::collections::{HashMap, HashSet};
use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::time::Duration;

use super::wire::{self, Op};
use super::Key;

/// The default acceptance window around the receiver's clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// A change the token map (the BPF `tokens` map) must make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Update {
    /// Steer joins carrying `token` to the backend with `mark`.
    Insert {
        /// The MPTCP receiver token.
        token: u32,
        /// The owning backend's mark.
        mark: u32,
    },
    /// No backend owns `token` any more: drop its joins.
    Remove {
        /// The MPTCP receiver token.
        token: u32,
    },
}

/// Why a datagram was refused; each reason has its counter in [`RegistryStats`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The structure is wrong (length, version, family, operation kind).
    #[error("malformed registry message: {0}")]
    Malformed(&'static str),
    /// The MAC does not match the key (forged, corrupted, or another key).
    #[error("registry message with a bad MAC (forged, or the sender uses another key)")]
    BadMac,
    /// Authentic, but from an address that is not a configured backend.
    #[error("registry message from unknown backend {0}")]
    UnknownBackend(IpAddr),
    /// The timestamp is outside the window around the receiver's clock.
    #[error("stale registry message from {backend}: {skew_ms} ms off the receiver's clock")]
    Stale {
        /// The backend the message claims.
        backend: IpAddr,
        /// Sender timestamp minus receiver clock, in milliseconds.
        skew_ms: i64,
    },
    /// (timestamp, seq) is not above the last accepted one from that backend.
    #[error("replayed registry message from {backend} (timestamp {timestamp_ms}, seq {seq})")]
    Replayed {
        /// The backend the message claims.
        backend: IpAddr,
        /// The message's timestamp.
        timestamp_ms: u64,
        /// The message's sequence number.
        seq: u64,
    },
}

impl Refusal {
    /// The counter name: `malformed`, `bad_mac`, `unknown_backend`, `stale`, `replayed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::BadMac => "bad_mac",
            Refusal::UnknownBackend(_) => "unknown_backend",
            Refusal::Stale { .. } => "stale",
            Refusal::Replayed { .. } => "replayed",
        }
    }
}

/// What an accepted datagram did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The backend that sent it.
    pub backend: IpAddr,
    /// Its sequence number.
    pub seq: u64,
    /// How many operations it carried.
    pub ops: usize,
    /// The map changes, at most one per token, in the order the tokens were first touched.
    pub updates: Vec<Update>,
}

/// Counters since the registry was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Datagrams accepted.
    pub accepted_messages: u64,
    /// Operations in accepted datagrams.
    pub accepted_ops: u64,
    /// Refused: the MAC did not match.
    pub bad_mac: u64,
    /// Refused: (timestamp, seq) not above the last accepted.
    pub replayed: u64,
    /// Refused: timestamp outside the window.
    pub stale: u64,
    /// Refused: authentic but not from a configured backend.
    pub unknown_backend: u64,
    /// Refused: structure wrong.
    pub malformed: u64,
    /// `Add`s of a token another backend owned (the newer claim wins).
    pub conflicts: u64,
}

struct Backend {
    mark: u32,
    tokens: HashSet<u32>,
}

/// The balancer's token table, fed with datagrams from backends.
///
/// Sans-I/O: [`Registry::handle`] takes the bytes and the receiver's clock and
/// returns the [`Update`]s for the BPF map. It keeps, per backend, the set of
/// tokens it owns, so a `Reset` or [`Registry::remove_backend`] deletes exactly
/// that backend's tokens.
pub struct Registry {
    key: Key,
    window_ms: u64,
    backends: HashMap<IpAddr, Backend>,
    /// token -> mark of the owner: the same content as the BPF map.
    owners: HashMap<u32, u32>,
    /// Last accepted (timestamp, seq) per backend address. Kept when a backend
    /// is removed, so a message captured before can not be replayed after it
    /// is added again.
    last: HashMap<IpAddr, (u64, u64)>,
    stats: RegistryStats,
}

impl Registry {
    /// A registry that accepts messages signed with `key` from `backends`
    /// (address, mark). Fails with `InvalidInput` when two backends share an
    /// address or a mark.
    pub fn new(key: Key, backends: impl IntoIterator<Item = (IpAddr, u32)>) -> io::Result<Self> {
        let mut r = Registry {
            key,
            window_ms: DEFAULT_WINDOW.as_millis() as u64,
            backends: HashMap::new(),
            owners: HashMap::new(),
            last: HashMap::new(),
            stats: RegistryStats::default(),
        };
        for (addr, mark) in backends {
            r.add_backend(addr, mark)?;
        }
        Ok(r)
    }

    /// Sets the acceptance window: a message's timestamp may be this far
    /// before or after the receiver's clock (default [`DEFAULT_WINDOW`]).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Accepts messages from `addr` from now on; its joins get `mark`.
    /// Fails with `InvalidInput` when the address or the mark is taken.
    pub fn add_backend(&mut self, addr: IpAddr, mark: u32) -> io::Result<()> {
        if self.backends.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("backend {addr} is already registered"),
            ));
        }
        if let Some((other, _)) = self.backends.iter().find(|(_, b)| b.mark == mark) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mark {mark:#x} of backend {addr} is already backend {other}'s"),
            ));
        }
        self.backends.insert(
            addr,
            Backend {
                mark,
                tokens: HashSet::new(),
            },
        );
        Ok(())
    }

    /// Forgets a backend and every token it owns; returns the map removals.
    /// `None` when it was not registered. A backend being drained stays
    /// registered until its last connection ends: its joins need its tokens.
    pub fn remove_backend(&mut self, addr: IpAddr) -> Option<Vec<Update>> {
        let b = self.backends.remove(&addr)?;
        let mut updates = Vec::with_capacity(b.tokens.len());
        for t in b.tokens {
            if self.owners.get(&t) == Some(&b.mark) {
                self.owners.remove(&t);
                updates.push(Update::Remove { token: t });
            }
        }
        Some(updates)
    }

    /// The registered backends, with their marks.
    pub fn backends(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        self.backends.iter().map(|(a, b)| (*a, b.mark))
    }

    /// The tokens `backend` owns now (`None` when it is not registered).
    pub fn tokens_of(&self, backend: IpAddr) -> Option<Vec<u32>> {
        let b = self.backends.get(&backend)?;
        Some(
            b.tokens
                .iter()
                .copied()
                .filter(|t| self.owners.get(t) == Some(&b.mark))
                .collect(),
        )
    }

    /// The mark joins with `token` get, if some backend owns it.
    pub fn mark_of(&self, token: u32) -> Option<u32> {
        self.owners.get(&token).copied()
    }

    /// Every (token, mark) pair: the content the BPF map must have, e.g. to
    /// fill a freshly loaded program.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.owners.iter().map(|(t, m)| (*t, *m))
    }

    /// Number of tokens in the table (entries of the BPF map).
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when no backend owns a token.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// Heap bytes the token tables hold now (allocated capacity, both
    /// tables), an estimate from the hash tables' layout: a slot costs its
    /// entry plus one control byte.
    pub fn memory_bytes(&self) -> usize {
        let owners = self.owners.capacity() * (size_of::<(u32, u32)>() + 1);
        let sets: usize = self
            .backends
            .values()
            .map(|b| b.tokens.capacity() * (size_of::<u32>() + 1))
            .sum();
        owners + sets
    }

    /// Handles one datagram received at `now_ms` (receiver clock, Unix
    /// milliseconds). Checks, in this order: structure, MAC, backend, window,
    /// replay; the first that fails is the refusal and is counted. Never
    /// panics, whatever the bytes.
    pub fn handle(&mut self, datagram: &[u8], now_ms: u64) -> Result<Accepted, Refusal> {
        let r = self.check_and_apply(datagram, now_ms);
        let s = &mut self.stats;
        match &r {
            Ok(a) => {
                s.accepted_messages += 1;
                s.accepted_ops += a.ops as u64;
            }
            Err(Refusal::Malformed(_)) => s.malformed += 1,
            Err(Refusal::BadMac) => s.bad_mac += 1,
            Err(Refusal::UnknownBackend(_)) => s.unknown_backend += 1,
            Err(Refusal::Stale { .. }) => s.stale += 1,
            Err(Refusal::Replayed { .. }) => s.replayed += 1,
        }
        r
    }

    fn check_and_apply(&mut self, datagram: &[u8], now_ms: u64) -> Result<Accepted, Refusal> {
        let parsed = wire::parse(datagram).map_err(Refusal::Malformed)?;
        if !wire::verify(&parsed, &self.key) {
            return Err(Refusal::BadMac);
        }
        let msg = parsed.message;
        let Some(mark) = self.backends.get(&msg.backend).map(|b| b.mark) else {
            return Err(Refusal::UnknownBackend(msg.backend));
        };
        let skew = i128::from(msg.timestamp_ms) - i128::from(now_ms);
        if skew.unsigned_abs() > u128::from(self.window_ms) {
            return Err(Refusal::Stale {
                backend: msg.backend,
                skew_ms: i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX }),
            });
        }
        let stamp = (msg.timestamp_ms, msg.seq);
        if let Some(last) = self.last.get(&msg.backend) {
            if stamp <= *last {
                return Err(Refusal::Replayed {
                    backend: msg.backend,
                    timestamp_ms: msg.timestamp_ms,
                    seq: msg.seq,
                });
            }
        }
        self.last.insert(msg.backend, stamp);
        let updates = self.apply(msg.backend, mark, &msg.ops);
        Ok(Accepted {
            backend: msg.backend,
            seq: msg.seq,
            ops: msg.ops.len(),
            updates,
        })
    }

    /// Applies the operations in order, then reports the net change per token,
    /// so a `Reset` followed by `Add` of a token it held leaves the map entry
    /// alone instead of removing and re-inserting it.
    fn apply(&mut self, addr: IpAddr, mark: u32, ops: &[Op]) -> Vec<Update> {
        let mut touched: Vec<(u32, Option<u32>)> = Vec::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let owners = &mut self.owners;
        let mut touch = |t: u32, owners: &HashMap<u32, u32>| {
            if seen.insert(t) {
                touched.push((t, owners.get(&t).copied()));
            }
        };
        for op in ops {
            match *op {
                Op::Add(t) => {
                    touch(t, owners);
                    match owners.insert(t, mark) {
                        Some(prev) if prev != mark => {
                            self.stats.conflicts += 1;
                            tracing::warn!(
                                token = format_args!("{t:#010x}"),
                                backend = %addr,
                                previous_mark = format_args!("{prev:#x}"),
                                "token claimed by two backends; the newer claim wins"
                            );
                            if let Some(b) = self.backends.values_mut().find(|b| b.mark == prev) {
                                b.tokens.remove(&t);
                            }
                        }
                        _ => {}
                    }
                    if let Some(b) = self.backends.get_mut(&addr) {
                        b.tokens.insert(t);
                    }
                }
                Op::Remove(t) => {
                    let Some(b) = self.backends.get_mut(&addr) else {
                        continue;
                    };
                    if b.tokens.remove(&t) && owners.get(&t) == Some(&mark) {
                        touch(t, owners);
                        owners.remove(&t);
                    }
                }
                Op::Reset => {
                    let Some(b) = self.backends.get_mut(&addr) else {
                        continue;
                    };
                    for t in b.tokens.drain() {
                        if owners.get(&t) == Some(&mark) {
                            touch(t, owners);
                            owners.remove(&t);
                        }
                    }
                }
            }
        }
        touched
            .into_iter()
            .filter_map(|(t, before)| match (before, owners.get(&t).copied()) {
                (b, Some(m)) if b != Some(m) => Some(Update::Insert { token: t, mark: m }),
                (Some(_), None) => Some(Update::Remove { token: t }),
                _ => None,
            })
            .collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backends", &self.backends.len())
            .field("tokens", &self.owners.len())
            .field("window_ms", &self.window_ms)
            .field("stats", &self.stats)
            .finish()
    }
}
