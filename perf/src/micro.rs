//! Item 5: what the criterion benchmarks (`perf/benches/introspection.rs`)
//! measure, shared with the runner that reads their results.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;

use mptcp_net::info::wire;
use mptcp_net::{Dialer, ListenConfig};

use crate::sys;

/// Criterion group of the status and introspection calls.
pub const GROUP_CALLS: &str = "calls";
/// Criterion group of the parsers.
pub const GROUP_PARSE: &str = "parse";

/// `(group, id, label)` of every benchmark, in the order of the report.
pub const BENCHES: [(&str, &str, &str); 9] = [
    (GROUP_CALLS, "multipath_tcp", "`multipath_tcp()`"),
    (GROUP_CALLS, "mptcp_status", "`mptcp_status()`"),
    (GROUP_CALLS, "mptcp_info", "`mptcp_info()`"),
    (GROUP_CALLS, "subflows", "`subflows()`"),
    (
        GROUP_CALLS,
        "mptcp_crate_status",
        "peer: the `mptcp` crate's `mptcp_status()`",
    ),
    (
        GROUP_CALLS,
        "raw_tcp_is_mptcp",
        "peer: raw `getsockopt(TCP_IS_MPTCP)`",
    ),
    (GROUP_PARSE, "parse_mptcp_info", "`wire::parse_mptcp_info`"),
    (GROUP_PARSE, "parse_tcp_info", "`wire::parse_tcp_info`"),
    (GROUP_PARSE, "parse_full_info", "`wire::parse_full_info`"),
];

/// The criterion group of the benchmark `id`.
pub fn group_of(id: &str) -> Option<&'static str> {
    BENCHES
        .iter()
        .find(|(_, i, _)| *i == id)
        .map(|(g, _, _)| *g)
}

/// An established loopback connection, MPTCP or plain TCP, with a byte sent
/// each way so both ends are fully established; client side first. Keep the
/// server side alive while the client is used.
pub fn pair(mptcp: bool) -> io::Result<(TcpStream, TcpStream)> {
    let listener = ListenConfig::new()
        .set_multipath_tcp(mptcp)
        .listen("127.0.0.1:0")?;
    let mut client = Dialer::new()
        .set_multipath_tcp(mptcp)
        .dial(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    let mut byte = [0u8; 1];
    client.write_all(b"x")?;
    server.read_exact(&mut byte)?;
    server.write_all(b"y")?;
    client.read_exact(&mut byte)?;
    Ok((client, server))
}

/// Real kernel replies for the parser benchmarks.
pub struct Replies {
    /// `getsockopt(SOL_MPTCP, MPTCP_INFO)`.
    pub mptcp_info: Vec<u8>,
    /// `getsockopt(SOL_TCP, TCP_INFO)`.
    pub tcp_info: Vec<u8>,
    /// `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)` with room for 8 subflows.
    pub full_info: sys::FullInfoReply,
}

/// Asks the kernel for each reply on `stream` (an MPTCP connection).
pub fn replies(stream: &TcpStream) -> io::Result<Replies> {
    let fd = stream.as_fd();
    let mut mptcp_info = vec![0u8; 2 * wire::MPTCP_INFO_LEN];
    let len = sys::getsockopt_buf(fd, wire::SOL_MPTCP, wire::MPTCP_INFO, &mut mptcp_info)?;
    mptcp_info.truncate(len);
    let mut tcp_info = vec![0u8; 2 * wire::TCP_INFO_LEN];
    let len = sys::getsockopt_buf(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut tcp_info)?;
    tcp_info.truncate(len);
    Ok(Replies {
        mptcp_info,
        tcp_info,
        full_info: sys::full_info(fd, 8)?,
    })
}
