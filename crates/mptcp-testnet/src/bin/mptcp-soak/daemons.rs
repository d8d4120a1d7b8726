//! The `mptcp` daemons under test: two path managers, the proxy pair, the gateway and
//! the converter, the exporter; started, killed, restarted, sampled every second.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mptcp_netlink::{EndpointFlags, PathManager};
use mptcp_testnet::soak::Side;

use crate::net::{self, SoakNet};
use crate::{pm_name, Args, Samples};

/// `kill -SIG pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub rss_kb: u64,
    pub fds: u64,
}

struct Daemon {
    args: Vec<String>,
    child: Option<Child>,
}

pub struct Daemons {
    mptcp: PathBuf,
    dir: PathBuf,
    list: Arc<Mutex<BTreeMap<String, Daemon>>>,
    /// Whether the path managers run `--userspace` now.
    pub userspace: bool,
    pub exporter: SocketAddr,
    client_ns: String,
    server_ns: String,
}

/// Whether a daemon's descriptors say it still holds connections: not a path
/// manager's (they hold none, and the `--userspace` mode keeps one more netlink
/// socket than the in-kernel one, so its idle count depends on the mode).
pub fn holds_connections(name: &str) -> bool {
    !name.starts_with("pm-")
}

const PM_CLIENT: &str = "role = \"client\"\nipv6 = false\n";
// The server has no default route (it routes by destination): announce anyway; never
// the uplink to the origin host.
const PM_SERVER: &str =
    "role = \"server\"\nipv6 = false\nrequire_default_route = false\nexclude = [\"up*\"]\n";

impl Daemons {
    pub fn start(args: &Args, net: &SoakNet) -> Result<Daemons, String> {
        // The proxies' idle timeout (`--idle-timeout`): a connection whose every
        // path died and whose client gave up is closed by it (the far end never
        // heard of the client's close).
        let idle = format!("{}s", args.idle_timeout.as_secs());
        let write = |name: &str, text: &str| -> Result<String, String> {
            let p = args.dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p.display().to_string())
        };
        let (cc, sc) = (
            write("pm-client.toml", PM_CLIENT)?,
            write("pm-server.toml", PM_SERVER)?,
        );
        // A free port for the exporter, on the root namespace's loopback.
        let exporter = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a port for the exporter: {e}"))?;
        let (c, s) = (
            net.tn.client().name().to_string(),
            net.tn.server().name().to_string(),
        );
        let svc = |port: u16| format!("{}:{port}", net::SERVICE);
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut list = BTreeMap::new();
        // `--notsent-lowat` for the four relays, when the soak was given one.
        let relay_extra: Vec<String> = args
            .notsent_lowat
            .map(|b| vec!["--notsent-lowat".to_string(), b.to_string()])
            .unwrap_or_default();
        let mut add = |name: &str, mut argv: Vec<String>| {
            if argv.iter().any(|a| a == "proxy") {
                argv.extend(relay_extra.iter().cloned());
            }
            list.insert(
                name.to_string(),
                Daemon {
                    args: argv,
                    child: None,
                },
            );
        };
        let state = |side: &str| args.dir.join(format!("state-{side}")).display().to_string();
        add(
            "pm-client",
            v(&[
                "--netns",
                &c,
                "pm",
                "run",
                "--config",
                &cc,
                "--state-dir",
                &state("client"),
            ]),
        );
        add(
            "pm-server",
            v(&[
                "--netns",
                &s,
                "pm",
                "run",
                "--config",
                &sc,
                "--state-dir",
                &state("server"),
            ]),
        );
        add(
            "proxy-client",
            v(&[
                "--json",
                "--netns",
                &c,
                "proxy",
                "--listen",
                &format!("127.0.0.1:{}", net::CLIENT_PROXY),
                "--listen-tcp",
                "--to",
                &svc(net::SERVER_PROXY),
                "--idle-timeout",
                &idle,
            ]),
        );
        add(
            "proxy-server",
            v(&[
                "--json",
                "--netns",
                &s,
                "proxy",
                "--listen",
                &format!("0.0.0.0:{}", net::SERVER_PROXY),
                "--to",
                &format!("127.0.0.1:{}", net::SINK),
                "--to-tcp",
                "--idle-timeout",
                &idle,
            ]),
        );
        add(
            "gateway",
            v(&[
                "--json",
                "--netns",
                &c,
                "proxy",
                "--socks5",
                &format!("127.0.0.1:{}", net::SOCKS),
                "--converter",
                &svc(net::CONVERTER),
                "--idle-timeout",
                &idle,
            ]),
        );
        add(
            "converter",
            v(&[
                "--json",
                "--netns",
                &s,
                "proxy",
                "--convert",
                &format!("0.0.0.0:{}", net::CONVERTER),
                "--allow",
                "198.18.0.0/16",
                "--allow-private-destinations",
                "--idle-timeout",
                &idle,
            ]),
        );
        add(
            "exporter",
            v(&[
                "--netns",
                &c,
                "--netns",
                &s,
                "exporter",
                "--listen",
                &exporter.to_string(),
            ]),
        );
        let d = Daemons {
            mptcp: args.mptcp.clone(),
            dir: args.dir.clone(),
            list: Arc::new(Mutex::new(list)),
            userspace: false,
            exporter,
            client_ns: c,
            server_ns: s,
        };
        let names: Vec<String> = d.list.lock().expect("daemons").keys().cloned().collect();
        for name in names {
            d.spawn(&name)?;
        }
        Ok(d)
    }

    pub fn spawn(&self, name: &str) -> Result<(), String> {
        let mut list = self.list.lock().expect("daemons");
        let daemon = list.get_mut(name).ok_or(format!("no daemon {name}"))?;
        if daemon.child.is_some() {
            // Already running (a restart after a mode switch restarted it).
            return Ok(());
        }
        let mut argv = daemon.args.clone();
        if name.starts_with("pm-") && self.userspace {
            argv.push("--userspace".into());
        }
        let open = |ext: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{name}.{ext}")))
                .map_err(|e| e.to_string())
        };
        let child = Command::new(&self.mptcp)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(open("out")?)
            .stderr(open("err")?)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} {}: {e}",
                    self.mptcp.display(),
                    argv.join(" ")
                )
            })?;
        daemon.child = Some(child);
        Ok(())
    }

    /// Sends `sig` and, for TERM, waits (at most 20 s) for the exit.
    pub fn stop(&self, name: &str, sig: &str) -> Result<(), String> {
        let child = self
            .list
            .lock()
            .expect("daemons")
            .get_mut(name)
            .and_then(|d| d.child.take());
        let Some(mut child) = child else {
            return Ok(());
        };
        signal(child.id(), sig);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                if sig == "TERM" && !status.success() {
                    return Err(format!(
                        "{name} exited with {status} on SIGTERM (see {name}.err)"
                    ));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                signal(child.id(), "KILL");
                let _ = child.wait();
                return Err(format!("{name} did not exit within 20 s of SIG{sig}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pm_restart(&mut self, side: Side) -> Result<(), String> {
        self.spawn(pm_name(side))
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        running(&self.list)
    }

    /// A handle that reads the daemons' current pids, RSS and descriptors from
    /// another thread (while the fault schedule holds `&mut Daemons`).
    pub fn view(&self) -> View {
        View {
            list: Arc::clone(&self.list),
        }
    }

    /// Samples RSS and descriptors of every daemon once a second until `stop`.
    pub fn start_sampler(&self, stop: Arc<AtomicBool>) -> JoinHandle<Samples> {
        let list = Arc::clone(&self.list);
        std::thread::spawn(move || {
            let mut samples: Samples = BTreeMap::new();
            let mut last_pid: BTreeMap<String, u32> = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                for (name, pid) in running(&list) {
                    let Some(s) = sample(pid) else { continue };
                    let series = samples.entry(name.clone()).or_default();
                    if last_pid.get(&name) != Some(&pid) {
                        series.push(Vec::new());
                        last_pid.insert(name, pid);
                    }
                    if let Some(inst) = series.last_mut() {
                        inst.push(s);
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        })
    }

    pub fn fd_counts(&self) -> BTreeMap<String, u64> {
        self.pids()
            .into_iter()
            .filter_map(|(n, pid)| sample(pid).map(|s| (n, s.fds)))
            .collect()
    }

    /// One scrape of the exporter: metric line (name and labels) -> value.
    pub fn scrape(&self) -> Result<BTreeMap<String, f64>, String> {
        let mut conn = TcpStream::connect_timeout(&self.exporter, Duration::from_secs(10))
            .map_err(|e| format!("exporter {}: {e}", self.exporter))?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        conn.read_to_string(&mut text)
            .map_err(|e| format!("exporter: {e}"))?;
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        let mut out = BTreeMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            if let Some((k, v)) = line.rsplit_once(' ') {
                if let Ok(v) = v.parse::<f64>() {
                    let k = k
                        .replace(&self.client_ns, "client")
                        .replace(&self.server_ns, "server");
                    out.insert(k, v);
                }
            }
        }
        if out.is_empty() {
            return Err(format!("exporter: no metrics in {} bytes", text.len()));
        }
        Ok(out)
    }

    /// Stops both path managers (SIGTERM) and lists the endpoints left behind, as
    /// `host: address id N flags dev IF`: the daemons' (any endpoint not `implicit`),
    /// then the kernel's own (`implicit`: made for a subflow from an address without
    /// an endpoint; no daemon's). Flags come from netlink, not from `ip`'s text (the
    /// iproute2 6.1 of Debian 12 prints `implicit` as `rawflags 10`). The daemons' state
    /// files, what each believed it owned, stay in the run's directory.
    pub fn stop_pm_and_list_endpoints(
        &self,
        net: &SoakNet,
    ) -> Result<(Vec<String>, Vec<String>), String> {
        // What the daemons see when they stop: a connection a process still holds
        // keeps the endpoints its subflows use. Shown when endpoints are left.
        let mut open = Vec::new();
        for (name, host) in [("client", net.tn.client()), ("server", net.tn.server())] {
            let conns = host
                .run(mptcp_netlink::connections)
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{name}: connections: {e}"))?;
            for c in conns.iter().filter(|c| !c.is_listener()) {
                open.push(format!(
                    "{name}: {} inode {}",
                    c.to_string().replace('\n', " |"),
                    c.inode
                ));
            }
        }
        for side in [Side::Client, Side::Server] {
            self.stop(pm_name(side), "TERM")?;
        }
        let (mut left, mut implicit) = (Vec::new(), Vec::new());
        for (name, host) in [("client", net.tn.client()), ("server", net.tn.server())] {
            let endpoints = host
                .run(|| PathManager::open().and_then(|pm| pm.endpoints()))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{name}: endpoints: {e}"))?;
            for e in endpoints {
                let line = format!(
                    "{name}: {} id {} {} dev {}",
                    e.address,
                    e.id,
                    e.flags,
                    e.interface.as_deref().unwrap_or("-")
                );
                if e.flags.contains(EndpointFlags::IMPLICIT) {
                    implicit.push(line);
                } else {
                    left.push(line);
                }
            }
        }
        if !left.is_empty() {
            for line in open {
                eprintln!("mptcp-soak: open when the path managers stopped: {line}");
            }
        }
        Ok((left, implicit))
    }

    pub fn stop_all(&self) {
        let names: Vec<String> = self.list.lock().expect("daemons").keys().cloned().collect();
        for n in names {
            let _ = self.stop(&n, "TERM");
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, d) in self.list.lock().expect("daemons").iter_mut() {
            if let Some(mut c) = d.child.take() {
                signal(c.id(), "KILL");
                let _ = c.wait();
            }
        }
    }
}

/// Each daemon running now: its name and pid.
fn running(list: &Mutex<BTreeMap<String, Daemon>>) -> Vec<(String, u32)> {
    list.lock()
        .expect("daemons")
        .iter()
        .filter_map(|(n, d)| d.child.as_ref().map(|c| (n.clone(), c.id())))
        .collect()
}

/// See [`Daemons::view`].
pub struct View {
    list: Arc<Mutex<BTreeMap<String, Daemon>>>,
}

impl View {
    /// Each running daemon: its pid and a sample of it now.
    pub fn now(&self) -> BTreeMap<String, (u32, Sample)> {
        running(&self.list)
            .into_iter()
            .filter_map(|(n, pid)| sample(pid).map(|s| (n, (pid, s))))
            .collect()
    }
}

fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at: Instant::now(),
        rss_kb,
        fds,
    })
}
