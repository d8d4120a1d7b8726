//! An echo server that says, for each client, whether MPTCP is in use.
//!
//! ```text
//! cargo run -p mptcp-net --example echo_server -- [::]:7878
//! ```
//! Then `cargo run -p mptcp-net --example echo_client -- 127.0.0.1:7878 hello`,
//! or any TCP client (`nc 127.0.0.1 7878`): it will show up as plain TCP.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;

use mptcp_net::{ListenConfig, MptcpExt};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "[::]:7878".into());
    let listener = ListenConfig::new().listen(addr.as_str())?;
    println!(
        "listening on {} ({})",
        listener.local_addr()?,
        listener.mptcp_status()?
    );
    // Bounded, so the example cannot run away: 1000 clients, then exit.
    for _ in 0..1000 {
        let (stream, peer) = listener.accept()?;
        println!("{peer}: {}", stream.mptcp_status()?);
        thread::spawn(move || {
            if let Err(e) = echo(stream) {
                eprintln!("{peer}: {e}");
            }
        });
    }
    Ok(())
}

fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}
