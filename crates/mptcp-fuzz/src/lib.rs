//! The fuzzing entry points of every parser in the workspace that reads bytes it does
//! not control: network input (PROXY protocol headers, SOCKS5, HTTP CONNECT, RFC 8803
//! Convert, the token registry's datagrams), kernel replies (generic netlink, `sock_diag`,
//! `MPTCP_INFO` and the subflow socket options) and the configuration files (`pm.toml`,
//! `proxy.toml`).
//!
//! Each entry is a `fn(&[u8])` that feeds the bytes to the parser and checks what can be
//! checked: no panic, no reported length past the input, an encoder's output parsing back
//! to the same value, a message cut short asking for more bytes rather than being
//! refused. It panics only when such an invariant breaks; that is the bug a fuzzer
//! reports.
//!
//! Two users share them, so a crash found once stays fixed:
//!
//! - the cargo-fuzz targets in `fuzz/` at the root of the repository (nightly, libFuzzer;
//!   `fuzz/run.sh --minutes N`), one target per entry of [`TARGETS`], named alike;
//! - the stable test `tests/corpus.rs` of this crate, which replays every file of
//!   `fuzz/corpus/<target>/` through the same entry in `cargo test`.
//!
//! This crate is not published; it has no API beyond this module's list.

pub mod config;
pub mod kernel;
pub mod proxy;
pub mod registry;

/// One fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directory `fuzz/corpus/<name>/`) and its entry.
#[derive(Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Feeds one input to the parser; panics only on a broken invariant.
    pub run: fn(&[u8]),
}

/// Every fuzz target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "proxy_protocol",
        run: proxy::proxy_protocol,
    },
    Target {
        name: "socks5",
        run: proxy::socks5,
    },
    Target {
        name: "http_connect",
        run: proxy::http_connect,
    },
    Target {
        name: "convert",
        run: proxy::convert,
    },
    Target {
        name: "netlink_codec",
        run: kernel::netlink_codec,
    },
    Target {
        name: "sock_diag",
        run: kernel::sock_diag,
    },
    Target {
        name: "mptcp_info",
        run: kernel::mptcp_info,
    },
    Target {
        name: "lb_registry",
        run: registry::lb_registry,
    },
    Target {
        name: "pm_toml",
        run: config::pm_toml,
    },
    Target {
        name: "proxy_toml",
        run: config::proxy_toml,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Reads structured values off the front of a fuzzer's input; past its end every value
/// is zero, so any input gives a value.
pub(crate) struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub(crate) fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    /// The next `len` bytes, fewer when the input ends first.
    pub(crate) fn chunk(&mut self, len: usize) -> &[u8] {
        let n = len.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}
