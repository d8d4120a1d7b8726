//! Sends a message to an echo server and says whether MPTCP carried it.
//!
//! ```text
//! cargo run -p mptcp-net --example echo_client -- 127.0.0.1:7878 "hello over MPTCP"
//! ```
//! Set `MPTCP_NET=0` to compare with plain TCP, or point it at a plain TCP
//! echo server to see the fallback reported.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mptcp_net::{Dialer, MptcpExt};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7878".into());
    let message = args.next().unwrap_or_else(|| "hello".into());

    let mut dialer = Dialer::new();
    dialer.set_timeout(Some(Duration::from_secs(5)));
    println!(
        "dialing {addr} (MPTCP intended: {})",
        dialer.multipath_tcp()
    );
    let mut stream = dialer.dial(addr.as_str())?;
    println!(
        "connected {} -> {}: {}",
        stream.local_addr()?,
        stream.peer_addr()?,
        stream.mptcp_status()?
    );

    stream.write_all(message.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut echoed = String::new();
    stream.read_to_string(&mut echoed)?;
    println!("echoed: {echoed}");
    println!("MPTCP still in use at the end: {}", stream.multipath_tcp()?);
    Ok(())
}
