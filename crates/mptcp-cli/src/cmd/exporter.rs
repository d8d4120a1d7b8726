//! `mptcp exporter`: Prometheus metrics over HTTP, from [`mptcp_exporter`].
//!
//! Starts one collector thread per `--netns` (or one in the current namespace), binds
//! the listen address, prints `listening on http://ADDR/metrics` on stderr (so a
//! script or a test knows when to scrape) and serves until Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use clap::Args;
use mptcp_exporter::{Collector, DEFAULT_LISTEN};
use rustix::thread::CapabilitySet;

use crate::error::{Error, EXIT_OK};
use crate::output::Output;

/// The after-help of `mptcp exporter`.
pub const EXPORTER_HELP: &str = "\
Serves GET /metrics (Prometheus text format 0.0.4) and nothing else (404). Each scrape
reads, per namespace: the MPTcpExt counters, one sock_diag dump of the MPTCP sockets,
the path manager's endpoints and limits, and the net.mptcp sysctls.

Metrics (with a netns label when several --netns are given):
  mptcp_mib_*_total                   every MPTcpExt counter (help names the kernel's)
  mptcp_mib_mp_curr_estab             connections established now (kernel gauge)
  mptcp_connections{state,fallback}   live connections
  mptcp_listeners                     listening sockets
  mptcp_connection_subflows           histogram of subflows per live connection
  mptcp_connections_sent_bytes        bytes sent, summed over live connections
  mptcp_connections_received_bytes    bytes received, likewise
  mptcp_endpoint{id,address,port,interface,signal,subflow,backup,fullmesh,implicit,laminar}
  mptcp_endpoints, mptcp_limit_subflows, mptcp_limit_add_addr_accepted
  mptcp_sysctl_info{enabled,path_manager,pm_type,scheduler,checksum_enabled,blackhole_timeout}
  mptcp_collector_success{collector}  0 when a part could not be read

A Grafana dashboard over these: packaging/grafana-mptcp.json.

Examples:
  mptcp exporter                                  on 127.0.0.1:9849
  mptcp exporter --listen 0.0.0.0:9849            reachable from the Prometheus host
  mptcp --netns blue --netns red exporter         two namespaces, netns label
  curl -s 127.0.0.1:9849/metrics | grep mptcp_connections";

/// `mptcp exporter`.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// The address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Once its namespaces are entered and the port bound, run as this user (a
    /// name or a uid). With or without it, every capability is dropped then: a
    /// scrape needs none.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// The namespaces of the global --netns options (set by `main`).
    #[arg(skip)]
    pub netns: Vec<String>,
}

/// Serves metrics until stopped.
pub fn run(args: &ExporterArgs, _out: &Output) -> Result<u8, Error> {
    if let Some(user) = &args.user {
        crate::privilege::check_user(user)?;
    }
    // The bounding set first, before any thread exists (it is per thread); the
    // namespace threads still need CAP_SYS_ADMIN to enter their namespaces.
    crate::privilege::drop_bounding(CapabilitySet::empty())?;
    let collector = Collector::new(&args.netns).map_err(Error::msg)?;
    let listener = TcpListener::bind(args.listen).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another program listens there: pick another --listen)"
            }
            std::io::ErrorKind::AddrNotAvailable => " (no interface has this address)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need root)",
            _ => "",
        };
        Error::msg(format!("cannot listen on {}: {e}{hint}", args.listen))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the listen address", e))?;
    // Set up: the namespaces entered, their path-manager sockets open, the port
    // bound. A scrape reads /proc/net, sock_diag and the path manager's tables,
    // none of which needs a capability: drop them all, in every thread (the user
    // switch first: it is applied to all threads, and needs CAP_SETUID in each).
    if let Some(user) = &args.user {
        crate::privilege::become_user(user)?;
    }
    collector.on_each_thread(drop_capabilities).map_err(|e| {
        Error::msg(format!(
            "cannot drop the collector threads' capabilities: {e}"
        ))
    })?;
    crate::privilege::keep_only(CapabilitySet::empty())?;
    // A scrape waits for the namespaces' threads on the blocking pool: one
    // runtime thread is enough for the responder.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = signal(SignalKind::terminate())
            .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
            .map_err(|e| Error::io("cannot handle SIGTERM and SIGINT", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(format!("serving on {bound} failed"), e))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io(format!("serving on {bound} failed"), e))?;
        let _ = writeln!(
            std::io::stderr(),
            "listening on http://{bound}/metrics (Ctrl-C to stop)"
        );
        tokio::select! {
            () = mptcp_metrics::serve(listener, collector) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<(), Error>(())
    })?;
    Ok(EXIT_OK)
}

/// Drops every capability of the calling thread (a namespace's collector thread).
fn drop_capabilities() -> std::io::Result<()> {
    crate::privilege::keep_only(CapabilitySet::empty())
        .map_err(|e| std::io::Error::other(e.to_string()))
}
