//! MPTCP token steering for a layer-4 balancer: the balancer learns from its
//! backends which MPTCP connection tokens they own, and a tc program on its
//! ingress sends every MP_JOIN SYN to the backend that owns the join's token.
//!
//! Behind a balancer that hashes the 5-tuple, a connection's first subflow
//! reaches its backend, but each MP_JOIN from another client address is hashed
//! anew and lands, most of the time, on a backend that does not know the token
//! and resets it (`MPJoinNoTokenFound`). The join's SYN carries the receiver's
//! token in clear; a table token -> backend on the balancer is enough to steer
//! it. This crate holds:
//!
//! - [`registry`]: the protocol backends publish their tokens with, sans-I/O
//!   ([`registry::Publisher`] on the backend, [`registry::Registry`] on the
//!   balancer), always compiled and free of BPF dependencies, so the backend's
//!   `mptcp pm` links it with `default-features = false`;
//! - [`PublisherSocket`]: the backend's blocking UDP sender;
//! - `RegistryServer` (feature `tokio`, default): the balancer's UDP receiver,
//!   which hands the map changes to an `UpdateSink`;
//! - `bpf::TokenSteering` (feature `bpf`, default): the tc program and its
//!   loader; it is an `UpdateSink` itself.
//!
//! The backend's side, without BPF or tokio:
//!
//! ```toml
//! mptcp-steer = { path = "../mptcp-steer", default-features = false }
//! ```
//!
//! # Message layout
//!
//! One UDP datagram is one message. Integers are big-endian. `A` is 4 for an
//! IPv4 backend address and 16 for IPv6, `n` the operation count:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | version, 1 |
//! | 1 | 1 | address family of the backend: 4 or 6 |
//! | 2 | 2 | `n`, number of operations |
//! | 4 | `A` | the backend's address, as the balancer knows it |
//! | 4+`A` | 8 | timestamp, sender's clock, Unix milliseconds |
//! | 12+`A` | 8 | sequence number, per sender, strictly increasing |
//! | 20+`A` | 5`n` | operations: kind (1 `Add`, 2 `Remove`, 3 `Reset`), token (`Reset`: 0) |
//! | 20+`A`+5`n` | 32 | HMAC-SHA256(key, every byte before) |
//!
//! A datagram is at most 1200 bytes by default (fits the IPv6 minimum MTU, so
//! never fragmented): 228 operations from an IPv4 backend, 226 from IPv6. An
//! `Add` costs 5 bytes on the wire; a connection (created and closed) costs
//! two operations, about 10 bytes when batched, or two 61-byte datagrams
//! (IPv4; 73 bytes for IPv6) when each is sent at once. A message with no operation is a heartbeat.
//!
//! # Authentication and the refusal rules
//!
//! The key is any secret of at least 16 bytes in a file shared by the balancer
//! and its backends ([`registry::Key::from_file`]). [`registry::Registry::handle`]
//! checks, in order, and counts the first failure under its reason:
//!
//! 1. `malformed`: length, version, family, operation kind; never panics;
//! 2. `bad_mac`: HMAC-SHA256 over the whole message, compared in constant time
//!    (`hmac`'s `verify_slice`);
//! 3. `unknown_backend`: the address is not one the balancer was given;
//! 4. `stale`: the timestamp is more than the window (default 30 s) before or
//!    after the receiver's clock, so a captured message expires;
//! 5. `replayed`: per backend, (timestamp, seq) must be strictly above the last
//!    accepted pair, compared as a pair. A restarted daemon starts again at
//!    seq 1 with a newer timestamp and is accepted; a replay inside the window
//!    is not. The last pair is kept when a backend is removed, so a message
//!    captured before cannot be replayed after it is added again. A
//!    [`registry::Publisher`] never lets its timestamp go back, even when the
//!    wall clock does.
//!
//! One key serves the whole fleet: any backend could speak for another. A
//! per-backend key would close that, at the cost of one key file per backend;
//! the address in the message is the identity, not the UDP source, so NAT
//! between backend and balancer does not matter.
//!
//! # Token table
//!
//! The registry keeps token -> mark (the BPF map's content) and each backend's
//! token set. `Reset` removes exactly that backend's tokens; removing a
//! backend does too. An operation batch is applied in order and reported as
//! the net change per token, so a `Reset` followed by the same tokens (a
//! restarted daemon's snapshot, when it fits in one datagram) leaves the map
//! alone. Two backends claiming one token (32-bit tokens, so rare but
//! possible in a large fleet): the newer claim wins, the older owner's later
//! `Remove` does nothing, and `conflicts` counts it; the older connection's
//! joins then reach the wrong backend and are reset there, as without steering.
//!
//! Memory: the registry holds 19 to 24 bytes per token on the balancer's
//! heap, depending on where the hash tables are in their growth
//! ([`registry::Registry::memory_bytes`]; measured with 21k and 66k tokens);
//! the kernel's token map adds 72 bytes per token (below).
//!
//! Throughput, measured on loopback in a namespace (release build, two cores
//! shared with the sender): about 100 000 single-`Add` datagrams per second,
//! and 1.2 to 1.8 million tokens per second in full datagrams (test
//! `registry_udp`, printed).
//!
//! # The tc program
//!
//! `bpf/steer.c`, on the clsact ingress of the balancer's client-facing
//! interfaces as a `cls_bpf` filter in direct-action mode, parses Ethernet,
//! then IPv4 (options skipped by IHL; non-first fragments pass) or IPv6 (no
//! extension headers: any other next header passes), then TCP. A SYN without
//! ACK whose destination is in the `vips` map and whose options hold MPTCP
//! (kind 30) subtype MP_JOIN (length 12 in a SYN) is a join: its receiver
//! token (bytes 4..8 of the option, network order) is looked up in the
//! `tokens` map (token -> mark). Found: `skb->mark` is set to the mark and the
//! packet passes; the balancer's nftables rules (saved into conntrack) and
//! routes forward it and the rest of that subflow. Not found: dropped
//! (`TC_ACT_SHOT`). Everything else passes untouched. Per-CPU counters: joins
//! seen, steered, dropped unknown, non-join passed
//! (`bpf::TokenSteering::stats`).
//!
//! The option walk runs under `bpf_loop` (Linux 5.17+), one option per step,
//! at most 40 steps, each index masked into a 64-byte copy of the options
//! (`bpf_skb_load_bytes`, so non-linear packets work too): the verifier
//! checks the body once. An open-coded bounded loop over unknown option
//! layouts made the verifier give up after a million instructions.
//!
//! The token map is a hash without preallocation, bounded at 2^20 tokens by
//! default (`bpf::TokenSteering::load_with_capacity`): the kernel allocates
//! the bucket array at load (16 MiB for 2^20) and each entry on insert
//! (measured by the kernel's own account: 72 bytes per token,
//! `bpf::TokenSteering::token_map_memory`).
//!
//! # Why tc, not XDP
//!
//! XDP runs before the kernel builds an `sk_buff`, so it cannot set
//! `skb->mark`, the one thing this program must do for nftables and policy
//! routing to pick the backend; it would have to rewrite and redirect the
//! packet itself, duplicating the balancer. XDP also runs only in generic
//! (slow) mode on veth. tc ingress sees the `sk_buff` before netfilter's
//! prerouting hook, sets the mark, and leaves forwarding to the kernel.
//!
//! # Why aya
//!
//! The program is C, compiled by `build.rs` with Debian's clang
//! (`clang-16 -O2 -g -target bpf`, headers from `libbpf-dev`) and embedded in
//! the library. It is loaded with aya, which is pure Rust: no libbpf (C
//! library, its own version skew) at run time and no bindgen or C toolchain
//! beyond clang at build time, the BTF map definitions and the `bpf_loop`
//! callback are relocated by aya itself, and the netlink calls that add
//! `clsact` and the filter come with it. libbpf-rs would need libbpf (static
//! or shared) and its skeleton generator on every build machine. A program
//! written in Rust (aya-ebpf) would need a nightly toolchain and
//! `bpf-linker`; C with clang is what Debian ships.
//!
//! # Namespaces
//!
//! Interfaces are resolved, and netlink spoken, in the calling thread's
//! network namespace; each attachment remembers its namespace, and detaching
//! (explicit or on drop) happens there, from any thread. Drop leaves no filter
//! behind; a `clsact` qdisc it had to add stays, empty.
//!
//! # Loss and races
//!
//! UDP is best-effort and the replay rule refuses a datagram overtaken by a
//! later one. A lost or refused `Add` leaves the token out of the map: that
//! connection's joins are dropped at the balancer and it keeps its first
//! subflow; nothing is ever steered to a wrong backend by loss. A lost
//! `Remove` leaves a stale entry until the backend's next `Reset` or removal;
//! MPTCP tokens are random, so a stale entry is only hit by a join for a dead
//! connection, which the backend resets anyway. A backend's daemon sends a
//! snapshot (`Reset` + its tokens) at start; sending one periodically repairs
//! any loss.
//!
//! The race between a join and its `Add` is usually won by the `Add`: a Linux
//! client opens its joins only once the connection is fully established, when
//! the server's first data or data-ack arrives (measured here: no join SYN
//! leaves a client whose server has not sent anything yet), while the backend
//! reports the token at its `created` event, when the first subflow's third
//! ACK arrives; the `Add` has one round trip of head start. A join SYN that
//! still arrives first is dropped, not sent to a wrong backend (where it
//! would be reset and never retried); the client retransmits it after its
//! SYN timeout, and that copy is steered: 1.03 s after the first data in the
//! test `join_dropped_before_the_token_is_known_is_steered_on_retransmit`.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bpf")]
pub mod bpf;
mod publisher_socket;
pub mod registry;
#[cfg(feature = "tokio")]
mod server;

pub use publisher_socket::PublisherSocket;
#[cfg(feature = "tokio")]
pub use server::{RegistryServer, UpdateSink, RECV_BUFFER_BYTES};
