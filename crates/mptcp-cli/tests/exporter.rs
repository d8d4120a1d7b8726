//! The `mptcp exporter` command's contract: it serves GET /metrics over HTTP (and
//! only that), and refuses bad options with one line and status 2. What the metrics
//! say is tested on the collector itself, in `crates/mptcp-exporter/tests`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::testnet;

/// A running `mptcp exporter` on 127.0.0.1 and a port the kernel picked.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Exporter {
    fn start(netns: &[&str]) -> Exporter {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mptcp"));
        for ns in netns {
            cmd.args(["--netns", ns]);
        }
        let mut child = cmd
            .args(["exporter", "--listen", "127.0.0.1:0"])
            .env_remove("MPTCP_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mptcp exporter");
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on http://") {
                        let addr = rest.split('/').next().unwrap().parse().unwrap();
                        return Exporter { child, addr };
                    }
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("mptcp exporter did not start within 10 s; stderr: {seen:?}");
    }

    /// One request; the status code and the body.
    fn request(&self, request: &str) -> (u16, String) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    fn metrics(&self) -> String {
        let (status, body) = self.request("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Only GET /metrics is served; a bad request gets its status, and the server goes on.
#[test]
fn serves_only_get_metrics() {
    let net = testnet();
    let exporter = Exporter::start(&[net.client().name()]);
    assert!(exporter.metrics().contains("mptcp_connections"));

    // Only /metrics, only GET.
    assert_eq!(exporter.request("GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(exporter.request("GET /metrics/x HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(exporter.request("POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(exporter.request("nonsense\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(exporter.request(&huge).0, 431);
    // Still serving after all that.
    assert!(exporter.metrics().contains("mptcp_connections"));
}

/// One line on stderr, exit status 2, naming `names`.
fn refused(cmd: &mut Command, names: &str) {
    let out = cmd.output().expect("run mptcp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.starts_with("mptcp: error: ") && stderr.contains(names),
        "{names}: {stderr}"
    );
}

#[test]
fn bad_exporter_input_is_one_line_and_status_2() {
    let bin = env!("CARGO_BIN_EXE_mptcp");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--netns",
        "mptcp-exporter-no-such-ns",
        "exporter",
        "--listen",
        "127.0.0.1:0",
    ]);
    refused(&mut cmd, "mptcp-exporter-no-such-ns");

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = Command::new(bin);
    cmd.args(["exporter", "--listen", &addr]);
    refused(&mut cmd, &addr);

    let mut cmd = Command::new(bin);
    cmd.args(["exporter", "--listen", "localhost"]);
    refused(&mut cmd, "'localhost'");

    let ns = common::netns("exp-one");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--netns",
        ns.name(),
        "--netns",
        ns.name(),
        "exporter",
        "--listen",
        "127.0.0.1:0",
    ]);
    refused(&mut cmd, "more than once");

    let mut cmd = Command::new(bin);
    cmd.args(["--netns", ns.name(), "--netns", ns.name(), "conns"]);
    refused(&mut cmd, "more than once");
}
