//! The soak's network: a [`TestNet`] of three paths, a service address on the
//! server reachable over any path that is up, and an origin host behind the server
//! (the converter's destinations); the converter's uplink capture.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_testnet::soak::{SOAK_PATHS, STRIP_PATH};
use mptcp_testnet::{Netns, TestNet};

/// The server's service address (on `lo`), routed by the client over path 0, else
/// path 1, else path 2 (route metrics), so new connections start on a path that is up.
pub const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
/// The server's end of the uplink to the origin host, and the origin's address.
pub const UPLINK_SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 250, 1);
pub const ORIGIN: Ipv4Addr = Ipv4Addr::new(198, 19, 250, 2);
/// Ports: the client proxy, the server proxy, the sinks, the SOCKS5 gateway, the
/// converter, and a trap on the origin nobody may ever reach through the converter.
pub const CLIENT_PROXY: u16 = 8080;
pub const SERVER_PROXY: u16 = 8443;
pub const SINK: u16 = 9000;
pub const SOCKS: u16 = 1080;
pub const CONVERTER: u16 = 5124;
pub const TRAP: u16 = 9999;

pub struct SoakNet {
    pub tn: TestNet,
    pub origin: Netns,
    /// `--no-strip`: [`SoakNet::strip`] changes nothing.
    no_strip: bool,
    /// The `mptcp` binary: socket dumps add `mptcp conns --json` (every field of
    /// each connection's `mptcp_info`, the path manager's counters included, which
    /// `ss` leaves out).
    pub mptcp: Option<std::path::PathBuf>,
}

fn exec(ns: &Netns, prog: &str, args: &[&str]) -> Result<(), String> {
    ns.exec(prog, args)
        .map(|_| ())
        .map_err(|e| format!("{} {prog} {}: {e}", ns.name(), args.join(" ")))
}

impl SoakNet {
    pub fn new(
        tn: TestNet,
        no_strip: bool,
        checksum: bool,
        rto_max_ms: Option<u64>,
    ) -> Result<SoakNet, String> {
        let origin = Netns::new("origin").map_err(|e| format!("origin namespace: {e}"))?;
        let server = tn.server();
        exec(
            server,
            "ip",
            &["addr", "add", &format!("{SERVICE}/32"), "dev", "lo"],
        )?;
        exec(
            server,
            "ip",
            &[
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                origin.name(),
            ],
        )?;
        exec(
            server,
            "ip",
            &["addr", "add", &format!("{UPLINK_SERVER}/24"), "dev", "up0"],
        )?;
        exec(server, "ip", &["link", "set", "up0", "up"])?;
        exec(
            &origin,
            "ip",
            &["addr", "add", &format!("{ORIGIN}/24"), "dev", "eth0"],
        )?;
        exec(&origin, "ip", &["link", "set", "eth0", "up"])?;
        exec(&origin, "ip", &["link", "set", "lo", "up"])?;
        exec(
            &origin,
            "ip",
            &["route", "add", "default", "via", &UPLINK_SERVER.to_string()],
        )?;
        // The kernel's MPTCP blackhole detection (6.12+) takes a SYN that got
        // through only once retransmitted without the MPTCP option for a middlebox
        // dropping MPTCP, and turns active MPTCP off for the namespace for an hour
        // (`blackhole_timeout`, 3600 s by default). A blackout here cuts every path
        // for everything, not MPTCP: left on, one connection dialled across it
        // turned the rest of a run into plain TCP (371 of 913 dials in a 60 s run).
        // Where the knob exists, it is off on both hosts.
        for host in [tn.client(), tn.server()] {
            if host.sysctl("net.mptcp.blackhole_timeout").is_ok() {
                host.set_sysctl("net.mptcp.blackhole_timeout", "0")
                    .map_err(|e| e.to_string())?;
            }
        }
        if checksum {
            for host in [tn.client(), tn.server()] {
                host.set_sysctl("net.mptcp.checksum_enabled", "1")
                    .map_err(|e| e.to_string())?;
            }
        }
        if let Some(ms) = rto_max_ms {
            for host in [tn.client(), tn.server()] {
                host.set_sysctl("net.ipv4.tcp_rto_max_ms", &ms.to_string())
                    .map_err(|e| format!("net.ipv4.tcp_rto_max_ms (Linux 6.15 or later): {e}"))?;
            }
        }
        let net = SoakNet {
            tn,
            origin,
            no_strip,
            mptcp: None,
        };
        for p in 0..SOAK_PATHS {
            net.service_route(p)?;
        }
        Ok(net)
    }

    /// The client's route to the service address over path `p` (again after the
    /// path or its address came back: the kernel drops it with the link).
    pub fn service_route(&self, p: usize) -> Result<(), String> {
        exec(
            self.tn.client(),
            "ip",
            &[
                "route",
                "replace",
                &format!("{SERVICE}/32"),
                "via",
                &format!("198.18.{p}.2"),
                "dev",
                &format!("p{p}"),
                "metric",
                &format!("{}", 10 * (p + 1)),
            ],
        )
    }

    pub fn client_addr(&self, p: usize) -> String {
        format!("198.18.{p}.1/24")
    }

    pub fn addr(&self, p: usize, add: bool) -> Result<(), String> {
        let dev = format!("p{p}");
        let verb = if add { "add" } else { "del" };
        exec(
            self.tn.client(),
            "ip",
            &["addr", verb, &self.client_addr(p), "dev", &dev],
        )?;
        if add {
            // The path's table and the service route went with the address.
            self.tn
                .path_up(p)
                .map_err(|e| format!("routes of path {p}: {e}"))?;
            self.service_route(p)?;
        }
        Ok(())
    }

    pub fn path(&self, p: usize, up: bool) -> Result<(), String> {
        self.tn
            .set_path_up(p, up)
            .map_err(|e| format!("path {p} {}: {e}", if up { "up" } else { "down" }))?;
        if up {
            self.service_route(p)?;
        }
        Ok(())
    }

    /// tbf on both ends of path `p`.
    pub fn rate(&self, p: usize, mbit: u32) -> Result<(), String> {
        // Bucket: 4 ms at the rate, at least 96 KiB (a whole 64 KiB GSO packet).
        let burst = (u64::from(mbit) * 1_000_000 / 8 / 250).max(96 * 1024);
        for host in [self.tn.client(), self.tn.server()] {
            exec(
                host,
                "tc",
                &[
                    "qdisc",
                    "replace",
                    "dev",
                    &format!("p{p}"),
                    "root",
                    "tbf",
                    "rate",
                    &format!("{mbit}mbit"),
                    "burst",
                    &burst.to_string(),
                    "latency",
                    "50ms",
                ],
            )?;
        }
        Ok(())
    }

    /// A middlebox on [`STRIP_PATH`] only: TCP option 30 stripped from what enters
    /// either end of that path.
    pub fn strip(&self, on: bool) -> Result<(), String> {
        if self.no_strip {
            return Ok(());
        }
        let dev = format!("p{STRIP_PATH}");
        for host in [self.tn.client(), self.tn.server()] {
            exec(
                host,
                "iptables",
                &[
                    "-w",
                    "-t",
                    "mangle",
                    if on { "-A" } else { "-D" },
                    "PREROUTING",
                    "-i",
                    &dev,
                    "-p",
                    "tcp",
                    "-j",
                    "TCPOPTSTRIP",
                    "--strip-options",
                    "30",
                ],
            )?;
        }
        Ok(())
    }

    /// `ss -tinM` of both hosts (every TCP socket and subflow with its `tcp_info`
    /// and MPTCP tokens, every MPTCP socket), then `mptcp conns --json` of both, into
    /// `path`.
    pub fn dump_sockets(&self, path: &Path) -> Result<(), String> {
        let mut text = String::new();
        for (name, host) in [("client", self.tn.client()), ("server", self.tn.server())] {
            let out = host
                .exec("ss", ["-tinM"])
                .map_err(|e| format!("ss on the {name}: {e}"))?;
            text.push_str(&format!("# {name}\n"));
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        if let Some(mptcp) = &self.mptcp {
            let prog = mptcp.to_string_lossy();
            for (name, host) in [("client", self.tn.client()), ("server", self.tn.server())] {
                // A failure here costs this part only: the ss output above stays.
                text.push_str(&format!("# {name} mptcp conns --json\n"));
                match host.exec(&prog, ["conns", "--json"]) {
                    Ok(out) => text.push_str(&String::from_utf8_lossy(&out.stdout)),
                    Err(e) => text.push_str(&format!("(mptcp conns on the {name}: {e})")),
                }
                text.push('\n');
            }
        }
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn sink_origin(&self) -> SocketAddr {
        SocketAddr::from((ORIGIN, SINK))
    }
}

/// tcpdump on the converter's uplink: the SYN of every connection the server host
/// opens towards the origin side.
pub struct Capture {
    child: Child,
    dials: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    pub fn start(net: &SoakNet, dir: &Path) -> Result<Capture, String> {
        let mut cmd: Command = net.tn.server().command("tcpdump");
        cmd.args([
            "-i",
            "up0",
            "-n",
            "-l",
            "-Q",
            "out",
            "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
        ]);
        let err = std::fs::File::create(dir.join("tcpdump.err")).map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run tcpdump (apt-get install tcpdump): {e}"))?;
        let out = child.stdout.take().ok_or("tcpdump: no stdout")?;
        let dials = Arc::new(Mutex::new(Vec::new()));
        let d = Arc::clone(&dials);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // "12:00:00.000000 IP 198.19.250.1.40000 > 198.19.250.2.9000: Flags [S], ..."
                if let Some(dst) = line.split(" > ").nth(1).and_then(|r| r.split(':').next()) {
                    d.lock().expect("dials").push(dst.to_string());
                }
            }
        });
        // tcpdump says "listening on up0" on stderr once capturing.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(dir.join("tcpdump.err")).unwrap_or_default();
            if text.contains("listening on") {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("tcpdump did not start: {text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Capture { child, dials })
    }

    /// Stops the capture; every destination dialled, as `addr.port`.
    pub fn finish(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        crate::daemons::signal(self.child.id(), "INT");
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        let d = self.dials.lock().expect("dials");
        d.clone()
    }
}
