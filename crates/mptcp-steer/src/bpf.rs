//! The tc program and its loader: marks MP_JOIN SYNs by receiver token.
//!
//! `bpf/steer.c`, built by `build.rs` with clang, is embedded in the library
//! and loaded with aya. See the crate docs for what it does and why tc.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;

use aya::maps::{HashMap, IterableMap, MapData, MapError, PerCpuArray};
use aya::programs::tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{include_bytes_aligned, Ebpf, EbpfLoader};

/// The compiled program (`bpf/steer.c`).
static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.o"));

const PROGRAM: &str = "steer";

/// The default bound on the token map: one entry per live MPTCP connection
/// in the fleet.
pub const DEFAULT_MAX_TOKENS: u32 = 1 << 20;

// Counter slots, as in bpf/steer.c.
const CNT_JOINS_SEEN: u32 = 0;
const CNT_STEERED: u32 = 1;
const CNT_DROPPED_UNKNOWN: u32 = 2;
const CNT_NON_JOIN_PASSED: u32 = 3;

/// What went wrong loading, attaching or updating the program.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The kernel refused the program or a map (verifier, permissions, no BPF).
    #[error(
        "cannot load the token-steering tc program (needs root or CAP_BPF+CAP_NET_ADMIN): {0}"
    )]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Adding clsact or the filter on an interface failed.
    #[error("cannot attach token steering to {interface}: {source}")]
    Attach {
        /// The interface.
        interface: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Removing the filter from an interface failed.
    #[error("cannot detach token steering from {interface}: {source}")]
    Detach {
        /// The interface.
        interface: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map operation failed (e.g. the token map is full: `E2BIG`).
    #[error("token steering map `{map}`: {op} failed: {source}")]
    Map {
        /// `tokens`, `vips` or `counters`.
        map: &'static str,
        /// What was done.
        op: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
}

impl From<SteerError> for io::Error {
    fn from(e: SteerError) -> io::Error {
        let kind = match &e {
            SteerError::Map {
                source: MapError::SyscallError(s),
                ..
            } => s.io_error.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The program's counters, summed over CPUs, since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteeringStats {
    /// SYNs carrying MP_JOIN to a VIP.
    pub joins_seen: u64,
    /// Joins whose token was in the map: marked and passed.
    pub steered: u64,
    /// Joins whose token was not in the map: dropped.
    pub dropped_unknown: u64,
    /// Every other packet: passed untouched.
    pub non_join_passed: u64,
}

/// The loaded token-steering program, its maps and its attachments.
///
/// Load once, [`attach`](TokenSteering::attach) to the balancer's
/// client-facing interfaces, tell it the VIPs, then keep the token map in
/// step with the registry ([`insert`](TokenSteering::insert),
/// [`remove`](TokenSteering::remove), or as an `UpdateSink` with feature
/// `tokio`). Interfaces are looked up, and netlink spoken, in the network
/// namespace of the calling thread. Dropping it removes every filter it
/// added; the `clsact` qdiscs it created stay (empty, harmless, and maybe
/// shared with other programs by then).
pub struct TokenSteering {
    ebpf: Ebpf,
    tokens: HashMap<MapData, u32, u32>,
    vips: HashMap<MapData, [u8; 16], u8>,
    counters: PerCpuArray<MapData, u64>,
    attached: Vec<Attachment>,
}

/// One filter: where, its link, and the network namespace it lives in.
struct Attachment {
    interface: String,
    link: SchedClassifierLinkId,
    netns: File,
}

const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// True when the calling thread is in the namespace `netns` refers to.
fn in_netns(netns: &File) -> bool {
    match (netns.metadata(), std::fs::metadata(THREAD_NETNS)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => true,
    }
}

impl std::fmt::Debug for TokenSteering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSteering")
            .field("attached", &self.interfaces().collect::<Vec<_>>())
            .finish()
    }
}

fn vip_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn boxed(
    e: impl std::error::Error + Send + Sync + 'static,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

impl TokenSteering {
    /// Loads the program with room for [`DEFAULT_MAX_TOKENS`] tokens.
    pub fn load() -> Result<Self, SteerError> {
        Self::load_with_capacity(DEFAULT_MAX_TOKENS)
    }

    /// Loads the program with room for `max_tokens` tokens. The kernel
    /// allocates the map's bucket array for this bound at once (16 bytes per
    /// bucket, rounded up to a power of two), and each token's entry when it
    /// is inserted.
    pub fn load_with_capacity(max_tokens: u32) -> Result<Self, SteerError> {
        let mut ebpf = EbpfLoader::new()
            .set_max_entries("tokens", max_tokens.max(1))
            .load(OBJECT)
            .map_err(|e| SteerError::Load(boxed(e)))?;
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| SteerError::Load("the object has no `steer` program".into()))?
            .try_into()
            .map_err(|e| SteerError::Load(boxed(e)))?;
        program.load().map_err(|e| SteerError::Load(boxed(e)))?;
        let mut take = |name: &'static str| {
            ebpf.take_map(name)
                .ok_or_else(|| SteerError::Load(format!("the object has no `{name}` map").into()))
        };
        let tokens = HashMap::try_from(take("tokens")?).map_err(|e| SteerError::Load(boxed(e)))?;
        let vips = HashMap::try_from(take("vips")?).map_err(|e| SteerError::Load(boxed(e)))?;
        let counters =
            PerCpuArray::try_from(take("counters")?).map_err(|e| SteerError::Load(boxed(e)))?;
        Ok(TokenSteering {
            ebpf,
            tokens,
            vips,
            counters,
            attached: Vec::new(),
        })
    }

    fn program(&mut self) -> Result<&mut SchedClassifier, SteerError> {
        self.ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| SteerError::Load("the `steer` program is gone".into()))?
            .try_into()
            .map_err(|e| SteerError::Load(boxed(e)))
    }

    /// Attaches the program to the ingress of `interface` as a `cls_bpf`
    /// filter in direct-action mode (`tc filter add dev IF ingress bpf da`),
    /// adding the `clsact` qdisc first when the interface has none.
    ///
    /// The interface is the one of that name in the calling thread's network
    /// namespace; the namespace is remembered, so [`detach`](Self::detach)
    /// and drop remove the filter there from any thread. Attaching twice to
    /// one interface is an `Attach` error.
    pub fn attach(&mut self, interface: &str) -> Result<(), SteerError> {
        let attach_err = |source| SteerError::Attach {
            interface: interface.to_string(),
            source,
        };
        if self.interfaces().any(|i| i == interface) {
            return Err(attach_err("already attached".into()));
        }
        let netns = File::open(THREAD_NETNS).map_err(|e| attach_err(boxed(e)))?;
        match tc::qdisc_add_clsact(interface) {
            Ok(()) => tracing::debug!(interface, "added the clsact qdisc"),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(attach_err(boxed(e))),
        }
        let link = self
            .program()?
            .attach_with_options(
                interface,
                TcAttachType::Ingress,
                TcAttachOptions::Netlink(NlOptions::default()),
            )
            .map_err(|e| attach_err(boxed(e)))?;
        self.attached.push(Attachment {
            interface: interface.to_string(),
            link,
            netns,
        });
        tracing::info!(
            interface,
            "token steering attached (tc ingress, direct action)"
        );
        Ok(())
    }

    /// Removes the filter from `interface`; `Ok(false)` when it was not
    /// attached there. Runs in the namespace the filter was attached in (on
    /// a short-lived thread when the caller is elsewhere): netlink and the
    /// interface index are per namespace.
    pub fn detach(&mut self, interface: &str) -> Result<bool, SteerError> {
        let Some(at) = self.attached.iter().position(|a| a.interface == interface) else {
            return Ok(false);
        };
        let Attachment {
            interface,
            link,
            netns,
        } = self.attached.swap_remove(at);
        let detach_err = |source| SteerError::Detach {
            interface: interface.clone(),
            source,
        };
        let program = self.program()?;
        if in_netns(&netns) {
            program.detach(link).map_err(|e| detach_err(boxed(e)))?;
        } else {
            std::thread::scope(|s| {
                s.spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        netns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|e| detach_err(boxed(io::Error::from(e))))?;
                    program.detach(link).map_err(|e| detach_err(boxed(e)))
                })
                .join()
                .unwrap_or_else(|_| Err(detach_err("the detaching thread panicked".into())))
            })?;
        }
        tracing::info!(%interface, "token steering detached");
        Ok(true)
    }

    /// Pins the program at `path` in a bpffs (e.g. `/sys/fs/bpf/mptcp-steer`),
    /// so `bpftool prog show pinned PATH` (or `prog run`) can reach it. The
    /// pin outlives this object; remove the file to drop it.
    pub fn pin(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), SteerError> {
        self.program()?
            .pin(path)
            .map_err(|e| SteerError::Load(boxed(e)))
    }

    /// The interfaces the program is attached to.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.attached.iter().map(|a| a.interface.as_str())
    }

    /// Steers joins to `vip` (a destination address the balancer serves).
    pub fn add_vip(&mut self, vip: IpAddr) -> Result<(), SteerError> {
        self.vips
            .insert(vip_key(vip), 1, 0)
            .map_err(|source| SteerError::Map {
                map: "vips",
                op: "insert",
                source,
            })
    }

    /// Stops steering joins to `vip`; `Ok(false)` when it was not there.
    pub fn remove_vip(&mut self, vip: IpAddr) -> Result<bool, SteerError> {
        absent_is_false(self.vips.remove(&vip_key(vip)), "vips")
    }

    /// Joins carrying `token` get `mark` (replaces an existing entry).
    pub fn insert(&mut self, token: u32, mark: u32) -> Result<(), SteerError> {
        self.tokens
            .insert(token, mark, 0)
            .map_err(|source| SteerError::Map {
                map: "tokens",
                op: "insert",
                source,
            })
    }

    /// Joins carrying `token` are dropped from now on; `Ok(false)` when it
    /// was not in the map.
    pub fn remove(&mut self, token: u32) -> Result<bool, SteerError> {
        absent_is_false(self.tokens.remove(&token), "tokens")
    }

    /// The mark joins with `token` get, if it is in the map.
    pub fn mark_of(&self, token: u32) -> Result<Option<u32>, SteerError> {
        match self.tokens.get(&token, 0) {
            Ok(mark) => Ok(Some(mark)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(SteerError::Map {
                map: "tokens",
                op: "lookup",
                source,
            }),
        }
    }

    /// The kernel's account of the token map's memory, in bytes: the
    /// `memlock` line of the map's `/proc/self/fdinfo` entry (bucket array
    /// plus the entries present, on Linux 6.5+).
    pub fn token_map_memory(&self) -> io::Result<u64> {
        let fd = self.tokens.map().fd().as_fd().as_raw_fd();
        let path = format!("/proc/self/fdinfo/{fd}");
        let text = std::fs::read_to_string(&path)?;
        text.lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no memlock line in {path}"),
                )
            })
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<SteeringStats, SteerError> {
        let read = |slot: u32| -> Result<u64, SteerError> {
            let per_cpu = self
                .counters
                .get(&slot, 0)
                .map_err(|source| SteerError::Map {
                    map: "counters",
                    op: "lookup",
                    source,
                })?;
            Ok(per_cpu.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(SteeringStats {
            joins_seen: read(CNT_JOINS_SEEN)?,
            steered: read(CNT_STEERED)?,
            dropped_unknown: read(CNT_DROPPED_UNKNOWN)?,
            non_join_passed: read(CNT_NON_JOIN_PASSED)?,
        })
    }
}

fn absent_is_false(r: Result<(), MapError>, map: &'static str) -> Result<bool, SteerError> {
    match r {
        Ok(()) => Ok(true),
        Err(MapError::SyscallError(ref s)) if s.io_error.kind() == io::ErrorKind::NotFound => {
            Ok(false)
        }
        Err(MapError::KeyNotFound) => Ok(false),
        Err(source) => Err(SteerError::Map {
            map,
            op: "delete",
            source,
        }),
    }
}

impl Drop for TokenSteering {
    fn drop(&mut self) {
        let interfaces: Vec<String> = self.interfaces().map(str::to_string).collect();
        for interface in interfaces {
            if let Err(e) = self.detach(&interface) {
                tracing::warn!(%interface, error = %e, "token steering filter left behind");
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl crate::UpdateSink for TokenSteering {
    fn apply(&mut self, update: &crate::registry::Update) -> io::Result<()> {
        use crate::registry::Update;
        match *update {
            Update::Insert { token, mark } => self.insert(token, mark)?,
            Update::Remove { token } => {
                self.remove(token)?;
            }
        }
        Ok(())
    }
}
