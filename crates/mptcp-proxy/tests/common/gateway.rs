//! Gateways on a runtime of their own thread (in this process's namespace, or
//! one a test network's host enters), and a SOCKS5 client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mptcp_proxy::gateway::{Gateway, GatewayConfig, GatewayRecord, GatewayShutdown, Mode};
use mptcp_proxy::Metrics;

/// What a gateways' runner hands back once they listen.
pub struct Started {
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Every listener's mode and address, in the order of the configs.
    pub listening: Vec<(Mode, SocketAddr)>,
    /// Stops the first gateway.
    pub stop: GatewayShutdown,
    /// Stops each gateway, in the order of the configs.
    pub stops: Vec<GatewayShutdown>,
    /// Every gateway's finished connections, in the order they ended.
    pub records: Arc<Mutex<Vec<GatewayRecord>>>,
    /// What they all count into (as `mptcp proxy` shares one set).
    pub metrics: Arc<Metrics>,
}

/// Binds and runs a gateway on a current-thread runtime of the calling thread
/// (so its sockets are made in the calling thread's network namespace); sends
/// [`Started`] once it listens; returns [`Gateway::run`]'s count.
pub fn run_gateway(config: GatewayConfig, started: std::sync::mpsc::Sender<Started>) -> usize {
    run_gateways(vec![config], started)
}

/// [`run_gateway`] for several listeners on one runtime, sharing their metrics
/// and their record list, as `mptcp proxy` runs its gateway roles; returns the
/// connections reset at the drain deadline, in all.
pub fn run_gateways(
    configs: Vec<GatewayConfig>,
    started: std::sync::mpsc::Sender<Started>,
) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut gateways = Vec::new();
        let mut listening = Vec::new();
        for config in configs {
            let mode = config.mode;
            let mut g = Gateway::bind(config, Arc::clone(&metrics))
                .await
                .unwrap_or_else(|e| panic!("bind the {} gateway: {e}", mode.as_str()));
            let r = Arc::clone(&records);
            g.on_connection_end(move |rec| r.lock().unwrap().push(rec.clone()));
            listening.push((mode, g.local_addr()));
            gateways.push(g);
        }
        let stops: Vec<GatewayShutdown> = gateways.iter().map(Gateway::shutdown_handle).collect();
        started
            .send(Started {
                addr: listening[0].1,
                listening,
                stop: stops[0].clone(),
                stops,
                records,
                metrics,
            })
            .unwrap();
        let runs: Vec<_> = gateways
            .into_iter()
            .map(|g| tokio::spawn(g.run()))
            .collect();
        let mut left = 0;
        for run in runs {
            left += run.await.expect("a gateway's task");
        }
        left
    })
}

/// The body of a gateways' thread, for [`RunningGateway::start_in`].
pub type GatewayThread = Box<dyn FnOnce() -> usize + Send>;

/// Gateways running on a thread of their own.
pub struct RunningGateway {
    pub started: Started,
    thread: Option<JoinHandle<usize>>,
}

impl RunningGateway {
    /// One gateway, in this process's namespace.
    pub fn start(config: GatewayConfig) -> RunningGateway {
        RunningGateway::start_in(vec![config], |run| run())
    }

    /// Gateways on one runtime ([`run_gateways`]), on a thread that runs its
    /// body through `enter`: `|run| host.run(run).unwrap()` puts them, and every
    /// socket they make, in a test network's namespace. A gateway that cannot
    /// bind fails the test with its error.
    pub fn start_in(
        configs: Vec<GatewayConfig>,
        enter: impl FnOnce(GatewayThread) -> usize + Send + 'static,
    ) -> RunningGateway {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || enter(Box::new(move || run_gateways(configs, tx))));
        let started = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(started) => started,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The runner ended before it listened: its panic says why.
                match thread.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(_) => panic!("the gateways' thread ended before they listened"),
                }
            }
            Err(e) => panic!("the gateways did not start: {e}"),
        };
        RunningGateway {
            started,
            thread: Some(thread),
        }
    }

    /// The address of the listener in `mode`.
    pub fn addr(&self, mode: Mode) -> SocketAddr {
        let listening = &self.started.listening;
        listening
            .iter()
            .find(|(m, _)| *m == mode)
            .unwrap_or_else(|| panic!("no {} listener: {listening:?}", mode.as_str()))
            .1
    }

    /// Waits until `n` connections have finished (10 s at most) and returns
    /// their records, in the order they ended.
    pub fn wait_records(&self, n: usize) -> Vec<GatewayRecord> {
        super::wait_records(&self.started.records, n)
    }

    /// Every record so far, for failure messages.
    pub fn dump(&self) -> String {
        let records = self.started.records.lock().unwrap();
        records.iter().map(|r| format!("{r:?}\n")).collect()
    }

    /// Stops the gateways; returns the connections reset at the drain deadline.
    pub fn stop(mut self) -> usize {
        for s in &self.started.stops {
            s.shutdown();
        }
        self.thread.take().unwrap().join().expect("gateway thread")
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            for s in &self.started.stops {
                s.shutdown_now();
            }
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
