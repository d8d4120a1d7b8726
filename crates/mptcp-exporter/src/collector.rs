//! One worker thread per network namespace, each living inside its namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mptcp_netlink::netns;

use crate::render::{render, RenderError};
use crate::snapshot::Snapshot;

pub use mptcp_netlink::netns::NETNS_DIR;

/// How long a scrape waits for a namespace's snapshot.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a [`Collector`] could not start.
#[derive(Debug)]
pub enum StartError {
    /// The namespace does not exist (`NotFound`), or could not be opened or entered;
    /// the error's message names it and the fix.
    Netns(String, io::Error),
    /// A worker thread could not be started.
    Thread(io::Error),
    /// The same namespace was given twice (its series would be counted twice).
    Duplicate(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Netns(_, e) => write!(f, "{e}"),
            StartError::Thread(e) => write!(f, "cannot start a collector thread: {e}"),
            StartError::Duplicate(name) => {
                write!(f, "network namespace {name:?} is given more than once")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// What a namespace's thread is asked to do.
enum Request {
    Snapshot(Sender<Snapshot>),
    Run(fn() -> io::Result<()>, Sender<io::Result<()>>),
}

struct Worker {
    name: String,
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

/// Takes a [`Snapshot`] of each namespace on demand and renders them together.
///
/// Each namespace has a thread that entered it (`setns(2)` on `/run/netns/NAME`)
/// before opening anything, so its netlink sockets and its reads of
/// `/proc/thread-self/net` and `/proc/sys/net` are that namespace's, whatever the
/// process's namespace is. The threads keep their path-manager socket between
/// scrapes and take their snapshots in parallel.
pub struct Collector {
    workers: Vec<Worker>,
}

impl Collector {
    /// A collector for the named namespaces, or for the calling thread's namespace
    /// when `netns` is empty.
    ///
    /// # Errors
    /// A namespace that does not exist or cannot be entered.
    pub fn new(netns: &[String]) -> Result<Collector, StartError> {
        let mut workers = Vec::new();
        if netns.is_empty() {
            workers.push(Worker::start(String::new(), None)?);
        }
        for (i, name) in netns.iter().enumerate() {
            if netns[..i].contains(name) {
                return Err(StartError::Duplicate(name.clone()));
            }
            let file = netns::open(name).map_err(|e| StartError::Netns(name.clone(), e))?;
            workers.push(Worker::start(name.clone(), Some(file))?);
        }
        Ok(Collector { workers })
    }

    /// The namespaces' names (empty for the calling thread's).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|w| w.name.as_str())
    }

    /// One snapshot per namespace, in the order given, taken in parallel. A namespace
    /// that does not answer within [`SCRAPE_TIMEOUT`] gets a snapshot of errors.
    pub fn snapshots(&self) -> Vec<(String, Snapshot)> {
        let pending: Vec<(String, Option<Receiver<Snapshot>>)> = self
            .workers
            .iter()
            .map(|w| {
                let (tx, rx) = mpsc::channel();
                let sent = w
                    .requests
                    .as_ref()
                    .is_some_and(|r| r.send(Request::Snapshot(tx)).is_ok());
                (w.name.clone(), sent.then_some(rx))
            })
            .collect();
        let deadline = Instant::now() + SCRAPE_TIMEOUT;
        pending
            .into_iter()
            .map(|(name, rx)| {
                let left = deadline.saturating_duration_since(Instant::now());
                let snap = match rx.map(|rx| rx.recv_timeout(left)) {
                    Some(Ok(snap)) => snap,
                    Some(Err(_)) => {
                        Snapshot::failed("the namespace's collector did not answer in time")
                    }
                    None => Snapshot::failed("the namespace's collector has stopped"),
                };
                (name, snap)
            })
            .collect()
    }

    /// Runs `f` on every namespace's thread, one after the other, and returns
    /// the first error. Made for dropping privileges once the threads have
    /// entered their namespaces and opened their path-manager sockets:
    /// capability sets belong to a thread, so each must drop its own.
    ///
    /// # Errors
    /// The first error `f` returned, or a thread that has stopped.
    pub fn on_each_thread(&self, f: fn() -> io::Result<()>) -> io::Result<()> {
        for w in &self.workers {
            let (tx, rx) = mpsc::channel();
            let asked = w
                .requests
                .as_ref()
                .is_some_and(|r| r.send(Request::Run(f, tx)).is_ok());
            let done = if asked {
                rx.recv_timeout(SCRAPE_TIMEOUT).ok()
            } else {
                None
            };
            done.unwrap_or_else(|| {
                Err(io::Error::other(format!(
                    "the collector thread of {:?} did not answer",
                    w.name
                )))
            })?;
        }
        Ok(())
    }

    /// A scrape: every namespace's snapshot, rendered.
    ///
    /// # Errors
    /// Only if the encoder refuses a metric (a bug).
    pub fn scrape(&self) -> Result<String, RenderError> {
        let snaps = self.snapshots();
        let refs: Vec<(&str, &Snapshot)> = snaps.iter().map(|(n, s)| (n.as_str(), s)).collect();
        render(&refs)
    }
}

impl mptcp_metrics::Scrape for Collector {
    fn scrape(&self) -> Result<String, mptcp_metrics::ScrapeError> {
        Ok(Collector::scrape(self)?)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the channel ends the worker's loop.
            w.requests.take();
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Worker {
    fn start(name: String, ns: Option<File>) -> Result<Worker, StartError> {
        let name_in_thread = name.clone();
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::channel::<io::Result<()>>();
        let label = if name.is_empty() {
            "collector".to_string()
        } else {
            format!("netns {name}")
        };
        let thread = std::thread::Builder::new()
            .name(label)
            .spawn(move || {
                if let Some(file) = ns {
                    if let Err(e) = netns::enter_fd(file.as_fd(), &name_in_thread) {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                // Opened at once, so that it exists before privileges are dropped
                // (opened again at a scrape if it breaks).
                let mut pm = mptcp_netlink::PathManager::open().ok();
                let _ = ready_tx.send(Ok(()));
                for request in inbox {
                    match request {
                        Request::Snapshot(reply) => {
                            let _ = reply.send(Snapshot::take(&mut pm));
                        }
                        Request::Run(f, reply) => {
                            let _ = reply.send(f());
                        }
                    }
                }
            })
            .map_err(StartError::Thread)?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Worker {
                name,
                requests: Some(requests),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(StartError::Netns(name, e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Thread(io::Error::other(
                    "the collector thread ended at start",
                )))
            }
        }
    }
}
