//! Bench client and server against each other, against Python's socket
//! module as a plain TCP peer (code no one here wrote the sockets of), over
//! loopback and over a two-path test network.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use mptcp_bench::{Client, ClientOptions, ConnReport, Direction, Server};
use mptcp_net::MptcpStatus;

fn require_mptcp() {
    let s = mptcp_net::support().expect("support()");
    assert!(s.is_available(), "these tests need MPTCP on this host: {s}");
}

fn opts(addr: SocketAddr, secs: f64) -> ClientOptions {
    let mut o = ClientOptions::new(addr);
    o.duration = Some(Duration::from_secs_f64(secs));
    o.interval = Duration::from_millis(200);
    o.verify = true;
    o
}

/// Runs `n` tests against a fresh server; returns the client summaries'
/// producer's results and the server's reports.
fn with_server<T>(
    tcp_only: bool,
    n: usize,
    f: impl FnOnce(SocketAddr) -> T,
) -> (T, Vec<ConnReport>) {
    let server = Server::bind("127.0.0.1:0", tcp_only).unwrap();
    let addr = server.local_addr().unwrap();
    let reports = Mutex::new(Vec::new());
    let out = std::thread::scope(|s| {
        let serving = s.spawn(|| {
            server
                .serve(Some(n), None, &|r| reports.lock().unwrap().push(r))
                .unwrap()
        });
        let out = f(addr);
        serving.join().unwrap();
        out
    });
    (out, reports.into_inner().unwrap())
}

#[test]
fn mptcp_upload_and_download_verified_with_intervals() {
    require_mptcp();
    let ((up, down, intervals), reports) = with_server(false, 2, |addr| {
        let mut intervals = 0;
        let up = Client::connect(&opts(addr, 1.0))
            .unwrap()
            .run(None, |i| {
                intervals += 1;
                assert_eq!(i.subflows.len(), 1, "loopback: one subflow");
            })
            .unwrap();
        let mut o = opts(addr, 1.0);
        o.reverse = true;
        let down = Client::connect(&o).unwrap().run(None, |_| {}).unwrap();
        (up, down, intervals)
    });
    for (s, dir) in [(&up, Direction::Upload), (&down, Direction::Download)] {
        println!(
            "{dir:?}: {} bytes in {:.2} s = {:.0} Mbit/s, {} subflow(s), {:?}",
            s.bytes, s.seconds, s.mbit_per_s, s.subflows_seen, s.status_end
        );
        assert_eq!(s.direction, dir);
        assert_eq!(s.verified, Some(true));
        assert!(s.mptcp_stayed_on);
        assert_eq!(s.status_start, MptcpStatus::Active);
        assert!(s.bytes > 0 && s.mbit_per_s > 0.0);
        assert_eq!(s.subflows_seen, 1);
    }
    assert!(
        intervals >= 4,
        "about one report per 200 ms, got {intervals}"
    );
    assert_eq!(reports.len(), 2);
    assert!(reports
        .iter()
        .all(|r| r.status == MptcpStatus::Active && r.error.is_none()));
    let json = serde_json::to_value(&up).unwrap();
    for field in [
        "bytes",
        "seconds",
        "mbit_per_s",
        "retransmits",
        "subflows_seen",
        "mptcp_stayed_on",
        "verified",
        "status_end",
    ] {
        assert!(
            json.get(field).is_some(),
            "summary JSON has {field}: {json}"
        );
    }
    assert_eq!(json["status_end"], "active");
}

#[test]
fn byte_count_bound_and_plain_tcp_modes() {
    require_mptcp();
    let ((exact, tcp_client), reports) = with_server(false, 2, |addr| {
        let mut o = opts(addr, 0.0);
        o.duration = None;
        o.bytes = Some(3_333_333);
        let exact = Client::connect(&o).unwrap().run(None, |_| {}).unwrap();
        let mut o = opts(addr, 0.5);
        o.tcp = true;
        let tcp = Client::connect(&o).unwrap().run(None, |_| {}).unwrap();
        (exact, tcp)
    });
    assert_eq!(exact.bytes, 3_333_333);
    assert_eq!(tcp_client.status_start, MptcpStatus::PlainTcp);
    assert!(!tcp_client.mptcp_stayed_on);
    // The MPTCP server took both kinds of clients.
    let statuses: Vec<_> = reports.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&MptcpStatus::Active) && statuses.contains(&MptcpStatus::PlainTcp));

    // A plain TCP server: the MPTCP client reports the fallback.
    let (fell_back, _) = with_server(true, 1, |addr| {
        Client::connect(&opts(addr, 0.5))
            .unwrap()
            .run(None, |_| {})
            .unwrap()
    });
    assert_eq!(fell_back.status_start, MptcpStatus::FellBack);
    assert_eq!(fell_back.verified, Some(true));
}

const PY_CLIENT: &str = r#"
import socket, struct, sys
addr = (sys.argv[1], int(sys.argv[2]))
s = socket.create_connection(addr)  # IPPROTO_TCP
s.sendall(b"MPTCPBN1" + struct.pack(">IIQQ", 0, 0, 1000000, 0))
s.sendall(bytes(1000000))
s.shutdown(socket.SHUT_WR)
res = b""
while len(res) < 32:
    chunk = s.recv(32 - len(res))
    if not chunk: break
    res += chunk
magic, nbytes = res[:8], struct.unpack(">Q", res[8:16])[0]
print(magic.decode(), nbytes)
"#;

#[test]
fn python_plain_tcp_client_against_our_server() {
    require_mptcp();
    let (out, reports) = with_server(false, 1, |addr| {
        Command::new("python3")
            .args([
                "-c",
                PY_CLIENT,
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .output()
            .expect("python3 is needed for this test")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "MPTCPBR1 1000000");
    assert_eq!(reports[0].status, MptcpStatus::PlainTcp);
    assert_eq!(reports[0].bytes, 1_000_000);
}

const PY_SERVER: &str = r#"
import socket, struct, sys, time
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # IPPROTO_TCP
l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
hdr = b""
while len(hdr) < 32: hdr += c.recv(32 - len(hdr))
n, t0 = 0, time.monotonic()
while True:
    d = c.recv(1 << 16)
    if not d: break
    n += len(d)
us = int((time.monotonic() - t0) * 1e6)
c.sendall(b"MPTCPBR1" + struct.pack(">QQII", n, us, 0, 0))
c.close()
"#;

#[test]
fn our_client_against_a_python_plain_tcp_server() {
    require_mptcp();
    let mut py = Command::new("python3")
        .args(["-c", PY_SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(py.stdout.as_mut().unwrap()),
        &mut port,
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", port.trim()).parse().unwrap();
    let mut o = opts(addr, 0.5);
    o.verify = false;
    let s = Client::connect(&o).unwrap().run(None, |_| {}).unwrap();
    assert!(py.wait().unwrap().success());
    println!("against Python: {:?}, {} bytes", s.status_start, s.bytes);
    assert_eq!(s.status_start, MptcpStatus::FellBack);
    assert!(s.bytes > 0);
}

#[test]
fn garbage_clients_get_an_error_report_not_a_crash() {
    require_mptcp();
    let (_, reports) = with_server(false, 1, |addr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n.....")
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let err = reports[0].error.as_deref().unwrap_or("");
    assert!(err.contains("not an mptcp bench client"), "{err}");
    // A client pointed at something that is not a bench server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n........................")
            .unwrap();
        let _ = std::io::copy(&mut c, &mut std::io::sink());
    });
    let err = Client::connect(&opts(addr, 0.2))
        .unwrap()
        .run(None, |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("not an mptcp bench server"),
        "{err}"
    );
    t.join().unwrap();
}

#[test]
fn over_two_paths_both_subflows_show_in_the_intervals() {
    let net = mptcp_testnet::TestNet::builder()
        .paths(2)
        .rate_mbit(50)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the test network: {e}"));
    let server = net
        .server()
        .run(|| Server::bind("0.0.0.0:5201", false))
        .unwrap()
        .unwrap();
    let addr = SocketAddr::new(net.server().addr(0).unwrap(), 5201);
    let summary = std::thread::scope(|s| {
        s.spawn(|| server.serve(Some(1), None, &|_| {}).unwrap());
        let client = net
            .client()
            .run(|| Client::connect(&opts(addr, 2.0)))
            .unwrap()
            .unwrap();
        let mut most = 0;
        let summary = client
            .run(None, |i| most = most.max(i.subflows.len()))
            .unwrap();
        assert_eq!(most, 2, "intervals list both subflows");
        summary
    });
    let shares: Vec<f64> = summary
        .subflow_bytes
        .iter()
        .map(|s| s.bytes as f64 / summary.bytes as f64)
        .collect();
    println!(
        "2 x 50 Mbit/s: {:.1} Mbit/s, subflow shares {shares:.2?}, retransmits {}",
        summary.mbit_per_s, summary.retransmits
    );
    assert_eq!(summary.subflows_seen, 2);
    assert!(shares.iter().all(|s| *s >= 0.25), "{shares:?}");
    assert_eq!(summary.verified, Some(true));
}
