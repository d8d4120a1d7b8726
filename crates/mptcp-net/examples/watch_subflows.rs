//! Polls a live MPTCP connection once a second and prints its subflows.
//!
//! ```text
//! cargo run -p mptcp-net --example watch_subflows -- [ADDR] [SECONDS]
//! ```
//! Without ADDR it starts its own discard server on loopback (one subflow).
//! Point it at a discard or echo server on a multipath host to watch the
//! subflows appear, carry traffic and go away. Sends as fast as it can for
//! SECONDS (default 5).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = match args.next() {
        Some(a) => a,
        None => local_discard_server()?,
    };
    let seconds: u64 = match args.next() {
        Some(s) => s.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("SECONDS {s:?}: {e}"))
        })?,
        None => 5,
    };

    let stream = Dialer::new().dial(addr.as_str())?;
    println!("connected to {addr}: {}", stream.mptcp_status()?);
    let deadline = Instant::now() + Duration::from_secs(seconds);

    // Send until the deadline; drain whatever comes back (echo servers).
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let chunk = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            writer.write_all(&chunk)?;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut reader = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });

    let mut previous: Vec<(Option<u32>, u64)> = Vec::new();
    for tick in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        print_tick(&stream, tick, &mut previous)?;
    }
    sender
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    Ok(())
}

fn print_tick(
    stream: &TcpStream,
    tick: u64,
    previous: &mut Vec<(Option<u32>, u64)>,
) -> io::Result<()> {
    match stream.mptcp_info()? {
        Some(info) => println!(
            "[{tick:>3}s] MPTCP token {:08x}: {} subflow(s), {} bytes sent, {} retransmitted",
            info.token,
            info.subflows_total.unwrap_or(info.subflows + 1),
            info.bytes_sent.unwrap_or(0),
            info.bytes_retrans.unwrap_or(0),
        ),
        None => println!("[{tick:>3}s] {}", stream.mptcp_status()?),
    }
    let mut now = Vec::new();
    for sf in stream.subflows()? {
        let acked = sf.tcp.bytes_acked.unwrap_or(0);
        let before = previous
            .iter()
            .find(|(id, _)| *id == sf.id)
            .map_or(0, |(_, b)| *b);
        let mbit = acked.saturating_sub(before) as f64 * 8.0 / 1e6;
        println!(
            "       subflow {:<4} {} -> {}  {:?}  rtt {:>8.2?}  cwnd {:>4}  {:>8.1} Mbit/s",
            sf.id.map_or("-".to_string(), |id| id.to_string()),
            sf.local.map_or("?".to_string(), |a| a.to_string()),
            sf.remote.map_or("?".to_string(), |a| a.to_string()),
            sf.tcp.state,
            sf.tcp.rtt,
            sf.tcp.snd_cwnd,
            mbit,
        );
        now.push((sf.id, acked));
    }
    *previous = now;
    Ok(())
}

/// An MPTCP discard server on loopback, for a self-contained run.
fn local_discard_server() -> io::Result<String> {
    let listener = ListenConfig::new().listen("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = vec![0u8; 256 * 1024];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    Ok(addr)
}
