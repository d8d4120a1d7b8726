//! The token registry of `mptcp lb` (`mptcp_steer::registry`): the datagrams backends
//! publish their MPTCP tokens with, as the balancer receives them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use mptcp_steer::registry::{Key, Refusal, Registry, Update};
use sha2::Sha256;

use crate::Input;

/// The key the fuzz registry shares with the inputs it signs.
pub const KEY: &[u8] = b"mptcp-fuzz registry key, 32 byte";
/// The registry's clock, Unix milliseconds (2025-12-01 06:00 UTC).
pub const NOW_MS: u64 = 1_764_568_800_000;
/// The configured backends and their marks.
pub const BACKENDS: [(IpAddr, u32); 2] = [
    (IpAddr::V4(Ipv4Addr::new(198, 19, 0, 2)), 1),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 2)),
        2,
    ),
];
/// A record's flag: append the MAC of its bytes, so the datagram passes
/// authentication and reaches the checks after it.
pub const SIGN: u8 = 1;
/// A record's flag: remove the IPv6 backend and add it back first.
pub const READD: u8 = 2;

/// The HMAC-SHA256 trailer of `signed` under [`KEY`], computed here from the layout
/// in `mptcp_steer`'s crate docs (the MAC covers every byte before it).
pub fn mac(signed: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY).expect("any key length");
    m.update(signed);
    m.finalize().into_bytes().into()
}

/// One record of an `lb_registry` input: flags, a big-endian length, the datagram.
pub fn record(flags: u8, datagram: &[u8]) -> Vec<u8> {
    let len = u16::try_from(datagram.len()).expect("a datagram of at most 65535 bytes");
    let mut out = vec![flags];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(datagram);
    out
}

/// A sequence of datagrams handled by one registry (two backends, fixed clock). The
/// input is records (see [`record`]); flag [`SIGN`] appends a valid MAC. Checked after
/// each: every datagram is counted under exactly one reason; a signed one is never
/// refused as forged; an accepted one has no more operations than its bytes hold;
/// applying the reported [`Update`]s to a copy of the map gives the registry's map; each
/// token's owner lists it.
pub fn lb_registry(data: &[u8]) {
    let key = Key::new(KEY).expect("a long enough key");
    let mut registry = Registry::new(key, BACKENDS).expect("two distinct backends");
    let mut shadow: HashMap<u32, u32> = HashMap::new();
    let apply = |shadow: &mut HashMap<u32, u32>, updates: &[Update]| {
        for u in updates {
            match *u {
                Update::Insert { token, mark } => {
                    shadow.insert(token, mark);
                }
                Update::Remove { token } => {
                    shadow.remove(&token);
                }
            }
        }
    };
    let mut input = Input(data);
    let mut handled = 0u64;
    while !input.0.is_empty() {
        let flags = input.u8();
        let len = usize::from(input.u16());
        let mut datagram = input.chunk(len).to_vec();
        if flags & READD != 0 {
            let (addr, mark) = BACKENDS[1];
            let updates = registry.remove_backend(addr).expect("configured");
            apply(&mut shadow, &updates);
            registry.add_backend(addr, mark).expect("removed just now");
        }
        if flags & SIGN != 0 {
            let m = mac(&datagram);
            datagram.extend_from_slice(&m);
        }
        let r = registry.handle(&datagram, NOW_MS);
        handled += 1;
        match &r {
            Ok(a) => {
                assert!(a.ops * 5 + 24 + 32 <= datagram.len(), "{a:?}");
                assert!(BACKENDS.iter().any(|(b, _)| *b == a.backend));
                apply(&mut shadow, &a.updates);
            }
            Err(Refusal::BadMac) => {
                assert!(
                    flags & SIGN == 0,
                    "a datagram with its MAC refused as forged"
                )
            }
            Err(other) => {
                let _ = (other.reason(), other.to_string());
            }
        }
        let s = registry.stats();
        let counted = s.accepted_messages
            + s.malformed
            + s.bad_mac
            + s.unknown_backend
            + s.stale
            + s.replayed;
        assert_eq!(counted, handled, "{s:?}");
        let entries: HashMap<u32, u32> = registry.entries().collect();
        assert_eq!(entries, shadow, "the updates do not give the map");
        assert_eq!(registry.len(), entries.len());
        let mut owned = 0;
        for (addr, mark) in BACKENDS {
            let tokens = registry.tokens_of(addr).expect("configured");
            owned += tokens.len();
            for t in tokens {
                assert_eq!(registry.mark_of(t), Some(mark), "token {t:#x}");
            }
        }
        assert_eq!(owned, registry.len(), "a token without its owner's listing");
        let _ = registry.memory_bytes();
    }
}
