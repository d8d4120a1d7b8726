//! Item 5, system calls per call: one connection, then one status or
//! introspection function called `k` times. A counter outside the process
//! (`strace -c`) runs it with two values of `k`; the difference divided by
//! the difference of `k` is the cost of one call, with the setup cancelled out.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use mptcp_net::MptcpExt;

use crate::conn::LoopResult;
use crate::sys;

/// The functions measured, by command-line name.
pub const FUNCTIONS: [&str; 8] = [
    "multipath_tcp",
    "mptcp_status",
    "mptcp_info",
    "subflows",
    "mptcp_status_on_tcp",
    "mptcp_crate_status",
    "raw_tcp_is_mptcp",
    "failing_mptcp_socket",
];

/// Calls `function` once (so one-time probes are out of the count), then `k`
/// times; `active` counts the calls that saw MPTCP.
pub fn run(function: &str, k: u64) -> io::Result<LoopResult> {
    let on_tcp = function == "mptcp_status_on_tcp";
    let (client, _server) = crate::micro::pair(!on_tcp)?;
    let call: Box<dyn Fn() -> io::Result<bool>> = match function {
        "multipath_tcp" => Box::new(|| client.multipath_tcp()),
        "mptcp_status" | "mptcp_status_on_tcp" => {
            Box::new(|| Ok(client.mptcp_status()?.is_active()))
        }
        "mptcp_info" => Box::new(|| Ok(client.mptcp_info()?.is_some())),
        "subflows" => Box::new(|| Ok(client.subflows()?.iter().any(|s| s.id.is_some()))),
        "mptcp_crate_status" => Box::new(|| {
            Ok(matches!(
                mptcp::MptcpExt::mptcp_status(&client),
                mptcp::MptcpStatus::Mptcp {
                    has_fallback: false
                }
            ))
        }),
        "raw_tcp_is_mptcp" => Box::new(|| sys::is_mptcp(client.as_fd())),
        // What mptcp-net's default policy pays on each dial where
        // net.mptcp.enabled=0: socket(IPPROTO_MPTCP) failing with ENOPROTOOPT.
        "failing_mptcp_socket" => Box::new(|| match sys::socket(sys::IPPROTO_MPTCP) {
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(false),
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other(
                "MPTCP sockets can be created here: run with net.mptcp.enabled=0",
            )),
        }),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown function {other}; one of {FUNCTIONS:?}"),
            ))
        }
    };
    call()?;
    let start = Instant::now();
    let mut active = 0;
    for _ in 0..k {
        active += u64::from(std::hint::black_box(call()?));
    }
    Ok(LoopResult {
        count: k,
        secs: start.elapsed().as_secs_f64(),
        active,
    })
}
