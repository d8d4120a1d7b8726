//! A gateway on a runtime of its own thread, and a SOCKS5 client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mptcp_proxy::gateway::{Gateway, GatewayConfig, GatewayRecord, GatewayShutdown};
use mptcp_proxy::Metrics;

/// What a gateway's runner hands back once it listens.
pub struct Started {
    pub addr: SocketAddr,
    pub stop: GatewayShutdown,
    pub records: Arc<Mutex<Vec<GatewayRecord>>>,
    pub metrics: Arc<Metrics>,
}

/// Binds and runs a gateway on a current-thread runtime of the calling thread
/// (so its sockets are made in the calling thread's network namespace); sends
/// [`Started`] once it listens; returns [`Gateway::run`]'s count.
pub fn run_gateway(config: GatewayConfig, started: std::sync::mpsc::Sender<Started>) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let mut g = Gateway::bind(config, Arc::clone(&metrics))
            .await
            .expect("bind the gateway");
        let records = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&records);
        g.on_connection_end(move |rec| r.lock().unwrap().push(rec.clone()));
        started
            .send(Started {
                addr: g.local_addr(),
                stop: g.shutdown_handle(),
                records,
                metrics,
            })
            .unwrap();
        g.run().await
    })
}

/// A gateway running on a thread of its own, in this process's namespace.
pub struct RunningGateway {
    pub started: Started,
    thread: Option<JoinHandle<usize>>,
}

impl RunningGateway {
    pub fn start(config: GatewayConfig) -> RunningGateway {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || run_gateway(config, tx));
        let started = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("gateway started");
        RunningGateway {
            started,
            thread: Some(thread),
        }
    }

    /// Stops the gateway; returns the connections reset at the drain deadline.
    pub fn stop(mut self) -> usize {
        self.started.stop.shutdown();
        self.thread.take().unwrap().join().expect("gateway thread")
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.started.stop.shutdown_now();
            let _ = t.join();
        }
    }
}

/// Opens a SOCKS5 (no authentication) tunnel to `dest` through `gateway`.
pub fn socks5_connect(gateway: SocketAddr, dest: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(gateway)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&[5, 1, 0])?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method)?;
    assert_eq!(method, [5, 0], "method selection");
    let mut req = vec![5, 1, 0];
    match dest.ip() {
        IpAddr::V4(ip) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
    }
    req.extend_from_slice(&dest.port().to_be_bytes());
    s.write_all(&req)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    if head[1] != 0 {
        return Err(io::Error::other(format!("SOCKS5 reply {}", head[1])));
    }
    let rest = if head[3] == 4 { 16 + 2 } else { 4 + 2 };
    let mut bound = vec![0u8; rest];
    s.read_exact(&mut bound)?;
    Ok(s)
}
