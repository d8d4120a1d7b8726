//! Connection-rate load for relays (used by `perf/proxy/compare.sh`).
//!
//! ```text
//! loadgen server ADDR              MPTCP listener: per connection, read 1 KiB, answer 1 KiB
//! loadgen rate ADDR SECS WORKERS   WORKERS loops of (dial MPTCP, send 1 KiB, read 1 KiB, close)
//! loadgen echo ADDR                plain TCP echo server (until each client's end of stream);
//!                                  prints its port first (perf/hostile/run.sh's upstream)
//! ```
//!
//! `rate` prints one JSON line: `{"connections", "errors", "secs", "per_s"}`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE: usize = 1024;

fn usage() -> ! {
    eprintln!("usage: loadgen server ADDR | loadgen rate ADDR SECS WORKERS | loadgen echo ADDR");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["server", addr] => server(addr).await,
        ["echo", addr] => echo(addr).await,
        ["rate", addr, secs, workers] => {
            let secs: f64 = secs.parse().unwrap_or_else(|_| usage());
            let workers: usize = workers.parse().unwrap_or_else(|_| usage());
            rate(addr, Duration::from_secs_f64(secs), workers).await
        }
        _ => usage(),
    }
}

async fn server(addr: &str) -> io::Result<()> {
    let mut config = ListenConfig::new();
    config.set_backlog(4096);
    let listener = config.listen_async(addr).await?;
    loop {
        let (mut s, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = [0u8; MESSAGE];
            if s.read_exact(&mut buf).await.is_ok() && s.write_all(&buf).await.is_ok() {
                // Wait for the client's close, so the server never holds TIME_WAIT.
                let _ = s.read(&mut buf).await;
            }
        });
    }
}

async fn echo(addr: &str) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

async fn rate(addr: &str, secs: Duration, workers: usize) -> io::Result<()> {
    let target = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::other("no address"))?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + secs;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (done, errors) = (Arc::clone(&done), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let dialer = Dialer::new();
            let request = [7u8; MESSAGE];
            let mut reply = [0u8; MESSAGE];
            while Instant::now() < deadline {
                let one = async {
                    let mut s = dialer.dial_async(target).await?;
                    s.write_all(&request).await?;
                    s.read_exact(&mut reply).await?;
                    io::Result::Ok(())
                };
                match tokio::time::timeout(Duration::from_secs(5), one).await {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"connections\": {n}, \"errors\": {}, \"secs\": {elapsed:.3}, \"per_s\": {:.0}}}",
        errors.load(Ordering::Relaxed),
        n as f64 / elapsed
    );
    Ok(())
}
