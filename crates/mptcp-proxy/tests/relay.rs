//! The relay on loopback, in-process: byte-exact transfers in splice and copy
//! mode, half-close, resets carried, backend down, idle timeout, max-conns,
//! drain on shutdown, and the PROXY header read by an independent parser.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{echo_backend, pattern, require_mptcp, round_trip, start};
use mptcp_net::{Dialer, MptcpExt, MptcpStatus};
use mptcp_proxy::{EndReason, ProxyProtocol, RelayMode, Route};

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn mptcp_client(addr: SocketAddr) -> TcpStream {
    let s = Dialer::new().dial(addr).expect("dial the proxy");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

#[test]
fn sizes_are_byte_exact_with_and_without_bulk_buffers_and_splice() {
    require_mptcp();
    let sizes = [1usize, 64 * 1024, 8 << 20];
    type Setting = (&'static str, fn(Route) -> Route);
    let settings: [Setting; 3] = [
        ("default (bulk buffer)", |r| r),
        ("no bulk buffer", |r| r.bulk_buffer(0)),
        ("splice on", |r| r.splice(true)),
    ];
    for (name, set) in settings {
        let (backend, echo) = echo_backend(sizes.len());
        let proxy = start(set(Route::new(any(), backend.to_string())));
        for &size in &sizes {
            let data = pattern(size);
            let client = mptcp_client(proxy.addr);
            assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::Active);
            let back = round_trip(&client, &data).unwrap();
            assert!(back == data, "{size} bytes came back different ({name})");
        }
        echo.join().unwrap().unwrap();
        let records = proxy.wait_records(sizes.len());
        for (r, &size) in records.iter().zip(&sizes) {
            assert_eq!(r.end, EndReason::Closed, "{r:?}");
            assert_eq!(r.bytes_to_upstream, size as u64, "{r:?}");
            assert_eq!(r.bytes_to_client, size as u64, "{r:?}");
            assert_eq!(r.client_mptcp, Some(MptcpStatus::Active), "{r:?}");
            // The backend is plain TCP: the MPTCP dial fell back on the wire.
            assert_eq!(r.upstream_mptcp, Some(MptcpStatus::FellBack), "{r:?}");
            // An MPTCP socket on either side: copied, even with splice on.
            assert_eq!(r.relay, Some(RelayMode::Copy), "{name}: {r:?}");
            println!("{size} B, {name}: relay {:?}, {:?}", r.relay, r.duration);
        }
        let text = proxy.metrics.encode();
        assert!(text.contains("mptcp_proxy_relay_total"), "{text}");
        proxy.stop();
    }
}

#[test]
fn tcp_sockets_copy_by_default() {
    let (backend, echo) = echo_backend(1);
    let proxy = start(
        Route::new(any(), backend.to_string())
            .listen_tcp(true)
            .to_tcp(true),
    );
    let client = TcpStream::connect(proxy.addr).unwrap();
    let data = pattern(4 << 20);
    assert!(round_trip(&client, &data).unwrap() == data);
    echo.join().unwrap().unwrap();
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.relay, Some(RelayMode::Copy), "{r:?}");
    assert_eq!(r.bytes_to_client, data.len() as u64, "{r:?}");
}

#[test]
fn splice_is_used_between_tcp_sockets_when_asked() {
    // Plain TCP on both sides: splice works on every kernel this runs on, so
    // "splice" must be what the relay picked.
    let (backend, echo) = echo_backend(1);
    let proxy = start(
        Route::new(any(), backend.to_string())
            .listen_tcp(true)
            .to_tcp(true)
            .splice(true),
    );
    let client = TcpStream::connect(proxy.addr).unwrap();
    let data = pattern(1 << 20);
    assert!(round_trip(&client, &data).unwrap() == data);
    echo.join().unwrap().unwrap();
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.relay, Some(RelayMode::Splice), "{r:?}");
    assert_eq!(r.client_mptcp, Some(MptcpStatus::PlainTcp), "{r:?}");
    assert_eq!(r.upstream_mptcp, Some(MptcpStatus::PlainTcp), "{r:?}");
}

#[test]
fn half_close_client_still_receives_10_mb() {
    require_mptcp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    let data = pattern(10 << 20);
    let sent = data.clone();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap(); // until the client's FIN arrives
        assert_eq!(req, b"give me 10 MB");
        s.write_all(&sent).unwrap();
    });
    let proxy = start(Route::new(any(), backend.to_string()));
    let mut client = mptcp_client(proxy.addr);
    client.write_all(b"give me 10 MB").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    server.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the 10 MB after the half-close differ");
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.end, EndReason::Closed, "{r:?}");
}

#[test]
fn backend_reset_reaches_the_client_as_a_reset() {
    require_mptcp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"partial").unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s); // RST
    });
    let proxy = start(Route::new(any(), backend.to_string()));
    let mut client = mptcp_client(proxy.addr);
    client.write_all(b"hello").unwrap();
    server.join().unwrap();
    let mut got = Vec::new();
    let err = client
        .read_to_end(&mut got)
        .expect_err("the client must see an error, not a clean EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.end, EndReason::UpstreamReset, "{r:?}");
    // Plain TCP from its dial on (the backend does not speak MPTCP): not a late
    // fallback.
    assert!(!r.upstream_fell_back_later, "{r:?}");
    let text = proxy.metrics.encode();
    assert!(
        text.lines().any(
            |l| l.starts_with("mptcp_proxy_errors_total{kind=\"upstream_reset\",")
                && l.ends_with("} 1")
        ),
        "{text}"
    );
}

#[test]
fn client_reset_reaches_the_backend_as_a_reset() {
    require_mptcp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        tx.send(()).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map(|_| rest)
    });
    let proxy = start(Route::new(any(), backend.to_string()));
    let mut client = mptcp_client(proxy.addr);
    client.write_all(b"hello").unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let got = server.join().unwrap();
    assert_eq!(
        got.map_err(|e| e.kind()).map(|v| v.len()),
        Err(ErrorKind::ConnectionReset)
    );
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.end, EndReason::ClientReset, "{r:?}");
}

#[test]
fn backend_down_client_closed_then_next_client_served() {
    require_mptcp();
    // A port with no listener, and that no other test can take meanwhile: a socket
    // bound to it, not listening (a closed port could be bound again by a test
    // running alongside, and the dial would reach that listener).
    let backend = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    backend
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = backend.local_addr().unwrap().as_socket().unwrap();
    let connect_timeout = Duration::from_secs(2);
    let proxy = start(Route::new(any(), addr.to_string()).connect_timeout(connect_timeout));
    let started = Instant::now();
    let mut client = mptcp_client(proxy.addr);
    let mut buf = [0u8; 16];
    let r = client.read(&mut buf);
    assert!(
        started.elapsed() < connect_timeout,
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the client must be reset: {r:?}"
    );
    assert_eq!(proxy.wait_records(1)[0].end, EndReason::ConnectRefused);

    // The backend comes up, on the same socket: the next client is served.
    backend.listen(8).unwrap();
    let listener: TcpListener = backend.into();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"up").unwrap();
    });
    let mut client = mptcp_client(proxy.addr);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"up");
    server.join().unwrap();
}

#[test]
fn backend_unreachable_client_closed_within_connect_timeout() {
    require_mptcp();
    // A listener whose accept queue is full never answers the next SYN (on
    // loopback the SYN is dropped and retried), so the dial times out.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&any().into()).unwrap();
    full.listen(0).unwrap();
    let addr: SocketAddr = full.local_addr().unwrap().as_socket().unwrap();
    let _filler: Vec<TcpStream> = (0..2)
        .filter_map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = s.connect(&addr.into());
            Some(s.into())
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let connect_timeout = Duration::from_millis(800);
    let proxy = start(Route::new(any(), addr.to_string()).connect_timeout(connect_timeout));
    let started = Instant::now();
    let mut client = mptcp_client(proxy.addr);
    let mut buf = [0u8; 16];
    let r = client.read(&mut buf);
    let took = started.elapsed();
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the client must be reset: {r:?}"
    );
    assert!(
        took >= connect_timeout && took < connect_timeout + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(proxy.wait_records(1)[0].end, EndReason::ConnectTimeout);
}

#[test]
fn idle_client_is_closed_at_the_idle_timeout() {
    require_mptcp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rest
    });
    let idle = Duration::from_millis(700);
    let proxy = start(Route::new(any(), backend.to_string()).idle_timeout(Some(idle)));
    let started = Instant::now();
    let mut client = mptcp_client(proxy.addr);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap(); // a clean close, at the timeout
    let took = started.elapsed();
    assert!(got.is_empty());
    assert!(
        took >= idle && took < idle + Duration::from_millis(1500),
        "closed after {took:?}, idle timeout {idle:?}"
    );
    assert!(server.join().unwrap().is_empty());
    assert_eq!(proxy.wait_records(1)[0].end, EndReason::IdleTimeout);
}

/// The relay's writes are done, but the upstream's small receive window lets the
/// kernel deliver what its send buffer holds only slowly: for longer than the
/// idle timeout the relay moves nothing while the peer keeps acknowledging
/// bytes. That connection is busy, not idle: the transfer and the reply arrive
/// whole.
#[test]
fn bytes_still_being_delivered_are_not_idle() {
    require_mptcp();
    const SIZE: usize = 2 << 20;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // Set before listen: accepted sockets inherit it, and a fixed receive buffer
    // keeps the window small.
    sock.set_recv_buffer_size(8 * 1024).unwrap();
    sock.bind(&any().into()).unwrap();
    sock.listen(8).unwrap();
    let listener: TcpListener = sock.into();
    let backend = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = Vec::with_capacity(SIZE);
        let started = Instant::now();
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            thread::sleep(Duration::from_millis(5));
        }
        let took = started.elapsed();
        s.write_all(&(got.len() as u64).to_be_bytes()).unwrap();
        (got, took)
    });
    let idle = Duration::from_millis(400);
    let proxy = start(Route::new(any(), backend.to_string()).idle_timeout(Some(idle)));
    let mut client = mptcp_client(proxy.addr);
    let data = pattern(SIZE);
    client.write_all(&data).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    let (got, took) = server.join().unwrap();
    assert!(
        got == data,
        "the upstream got {} bytes, not the {SIZE} sent",
        got.len()
    );
    assert_eq!(reply, (SIZE as u64).to_be_bytes(), "the reply");
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.end, EndReason::Closed, "{r:?}");
    println!("delivered in {took:?} with a {idle:?} idle timeout");
}

/// An upstream that stops reading acknowledges nothing more: with the relay's
/// bytes queued and none delivered, the connection is closed at the idle timeout.
#[test]
fn bytes_the_peer_never_takes_do_not_keep_a_connection() {
    require_mptcp();
    let listener = TcpListener::bind(any()).unwrap();
    let backend = listener.local_addr().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        // Holds the connection without reading until the test is over.
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(s);
    });
    let idle = Duration::from_millis(600);
    let proxy = start(Route::new(any(), backend.to_string()).idle_timeout(Some(idle)));
    let mut client = mptcp_client(proxy.addr);
    client.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Fill every buffer on the way: the upstream's, the relay's, the client's.
    while Instant::now() < deadline {
        match client.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(100));
                if client.write(&chunk).is_err() {
                    break;
                }
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let full = Instant::now();
    client.set_nonblocking(false).unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest); // EOF or a reset, at the timeout
    let took = full.elapsed();
    let r = &proxy.wait_records(1)[0];
    assert_eq!(r.end, EndReason::IdleTimeout, "{r:?}");
    assert!(
        took < idle * 2 + Duration::from_secs(1),
        "closed {took:?} after the buffers filled ({sent} B), idle timeout {idle:?}"
    );
    done_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn max_conns_pauses_accepting() {
    require_mptcp();
    let (backend, echo) = echo_backend(3);
    let proxy = start(Route::new(any(), backend.to_string()).max_conns(1));
    // The backend serves one connection at a time too, so use a short exchange.
    let first = mptcp_client(proxy.addr);
    let mut second = mptcp_client(proxy.addr); // queued in the backlog
    second.write_all(b"x").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut b = [0u8; 1];
    let r = second.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut),
        "the second client must wait while the first holds the only slot: {r:?}"
    );
    assert!(round_trip(&first, b"one").unwrap() == b"one");
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    second.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
    let third = mptcp_client(proxy.addr);
    assert!(round_trip(&third, b"three").unwrap() == b"three");
    echo.join().unwrap().unwrap();
}

/// A client that resets while it waits in the backlog costs no dial: the
/// backend serves two connections, so a dial for the reset client would leave the
/// third client without one.
#[test]
fn client_reset_in_the_backlog_is_not_dialled() {
    require_mptcp();
    let (backend, echo) = echo_backend(2);
    let proxy = start(Route::new(any(), backend.to_string()).max_conns(1));
    // The first client holds the only slot: an echo, but no half-close (a
    // finished round trip would end its session, and free the slot, before the
    // second client even connects).
    let mut first = mptcp_client(proxy.addr);
    first.write_all(b"one").unwrap();
    let mut one = [0u8; 3];
    first.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"one");
    // The second client (plain TCP, as storms are) waits in the backlog, and
    // resets.
    let second = TcpStream::connect(proxy.addr).unwrap();
    socket2::SockRef::from(&second)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(second);
    // The RST reaches the listener's subflow at once on loopback; the MPTCP
    // socket waiting to be accepted takes its error from the kernel's worker.
    thread::sleep(Duration::from_millis(100));
    drop(first);
    let third = mptcp_client(proxy.addr);
    assert!(round_trip(&third, b"three").unwrap() == b"three");
    echo.join().unwrap().unwrap();
    let records = proxy.wait_records(3);
    let reset: Vec<_> = records
        .iter()
        .filter(|r| r.end == EndReason::ClientReset)
        .collect();
    assert_eq!(reset.len(), 1, "{records:?}");
    assert_eq!(reset[0].core.upstream, None, "not dialled: {:?}", reset[0]);
}

#[test]
fn shutdown_drains_then_resets_at_the_deadline() {
    require_mptcp();
    let (backend, _echo) = echo_backend(2);
    let mut config = mptcp_proxy::Config::new(vec![Route::new(any(), backend.to_string())]);
    config.drain_timeout = Duration::from_millis(800);
    let proxy = common::start_config(config);
    let mut open = mptcp_client(proxy.addr);
    open.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    open.read_exact(&mut b).unwrap();
    let (addr, stop) = (proxy.addr, proxy.stop.clone());
    common::check_drain_then_reset(addr, &mut open, Duration::from_millis(800), &stop, || {
        proxy.stop().reset_at_deadline
    });
}

/// An independent PROXY protocol parser, written from HAProxy's specification.
/// It accepts one connection, parses the header, reads the payload to EOF and
/// answers one JSON line.
const PARSER: &str = r#"
import ipaddress, json, socket, struct, sys
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.bind(("127.0.0.1", 0))
ls.listen(4)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
c.settimeout(10)
def exact(n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            raise SystemExit("EOF inside the header")
        b += k
    return b
def port(s):
    if not s.isdigit() or (len(s) > 1 and s[0] == "0") or int(s) > 65535:
        raise SystemExit("bad port " + s)
    return int(s)
out = {}
head = exact(12)
if head == SIG:
    out["version"] = 2
    ver_cmd, fam, length = struct.unpack("!BBH", exact(4))
    assert ver_cmd >> 4 == 2, "version nibble"
    assert ver_cmd & 0xF == 1, "command PROXY"
    body = exact(length)
    if fam == 0x11:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12]); rest = body[12:]
    elif fam == 0x21:
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36]); rest = body[36:]
    else:
        raise SystemExit("family %#x" % fam)
    tlvs = {}
    while rest:
        t, l = rest[0], struct.unpack("!H", rest[1:3])[0]
        assert len(rest) >= 3 + l, "TLV overruns the header"
        tlvs["%#04x" % t] = rest[3:3 + l].hex()
        rest = rest[3 + l:]
    out.update(src=str(src), dst=str(dst), sport=sport, dport=dport, tlvs=tlvs)
elif head.startswith(b"PROXY "):
    out["version"] = 1
    line = head
    while not line.endswith(b"\r\n"):
        line += exact(1)
        assert len(line) <= 107, "no CRLF in 107 bytes"
    parts = line[:-2].decode("ascii").split(" ")
    assert len(parts) == 6 and parts[0] == "PROXY", parts
    cls = {"TCP4": ipaddress.IPv4Address, "TCP6": ipaddress.IPv6Address}[parts[1]]
    src, dst = cls(parts[2]), cls(parts[3])
    assert str(src) == parts[2] and str(dst) == parts[3], "canonical form"
    out.update(src=str(src), dst=str(dst), sport=port(parts[4]), dport=port(parts[5]), family=parts[1])
else:
    raise SystemExit("no PROXY header: %r" % head)
payload = b""
while True:
    k = c.recv(65536)
    if not k:
        break
    payload += k
out["payload"] = payload.decode("utf-8", "replace")
c.sendall((json.dumps(out) + "\n").encode())
c.close()
"#;

fn parse_through_proxy(version: ProxyProtocol, mptcp_client_side: bool) -> serde_json::Value {
    let mut py = Command::new("python3")
        .args(["-c", PARSER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the PROXY protocol parser");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(py.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("the parser's port");
    let proxy = start(
        Route::new(any(), format!("127.0.0.1:{port}"))
            .to_tcp(true)
            .proxy_protocol(version),
    );
    let mut client = if mptcp_client_side {
        mptcp_client(proxy.addr)
    } else {
        TcpStream::connect(proxy.addr).unwrap()
    };
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"hello after the header").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    let status = py.wait().unwrap();
    assert!(status.success(), "the parser failed: {status}");
    let mut v: serde_json::Value =
        serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    let local = client.local_addr().unwrap();
    assert_eq!(v["src"], local.ip().to_string(), "{v}");
    assert_eq!(v["sport"], local.port(), "{v}");
    assert_eq!(v["dst"], proxy.addr.ip().to_string(), "{v}");
    assert_eq!(v["dport"], proxy.addr.port(), "{v}");
    assert_eq!(v["payload"], "hello after the header", "{v}");
    v["client"] = format!("{local}").into();
    v
}

#[test]
fn proxy_protocol_v1_read_by_an_independent_parser() {
    require_mptcp();
    let v = parse_through_proxy(ProxyProtocol::V1, true);
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["family"], "TCP4", "{v}");
}

#[test]
fn proxy_protocol_v2_carries_the_mptcp_flag() {
    require_mptcp();
    let v = parse_through_proxy(ProxyProtocol::V2, true);
    assert_eq!(v["version"], 2, "{v}");
    assert_eq!(v["tlvs"]["0xec"], "01", "MPTCP client: {v}");
    let v = parse_through_proxy(ProxyProtocol::V2, false);
    assert_eq!(v["tlvs"]["0xec"], "00", "plain TCP client: {v}");
}

/// `TCP_NOTSENT_LOWAT` of the open TCP/MPTCP sockets of this process whose peer is
/// `peer`, read through `/proc/self/fd`: the relay's own sockets, which the test
/// cannot reach otherwise.
fn notsent_lowat_towards(peer: SocketAddr) -> Vec<u32> {
    use std::os::fd::BorrowedFd;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        // SAFETY: `fd` is open in this process (listed just now) and only read
        // through this borrow, which ends before the loop goes on; the sockets
        // looked for stay open while the test holds its connection.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let Some(p) = sock.peer_addr().ok().and_then(|a| a.as_socket()) else {
            continue;
        };
        if p == peer {
            found.push(sock.tcp_notsent_lowat().unwrap());
        }
    }
    found
}

#[test]
fn relayed_sockets_carry_the_notsent_lowat_setting() {
    require_mptcp();
    let kernel: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_notsent_lowat")
        .expect("net.ipv4.tcp_notsent_lowat")
        .trim()
        .parse()
        .expect("a number");
    // Left alone, a TCP socket reads back the sysctl and an MPTCP one 0 ("unset").
    let unset = [0, kernel];
    type Setting = (&'static str, fn(Route) -> Route, Option<u32>);
    let settings: [Setting; 3] = [
        ("default", |r| r, Some(mptcp_proxy::DEFAULT_NOTSENT_LOWAT)),
        (
            "64 KiB",
            |r| r.notsent_lowat(Some(64 * 1024)),
            Some(64 * 1024),
        ),
        ("off", |r| r.notsent_lowat(None), None),
    ];
    for (name, set, want) in settings {
        let (backend, echo) = echo_backend(1);
        let proxy = start(set(Route::new(any(), backend.to_string())));
        let client = mptcp_client(proxy.addr);
        // One byte there and back: the session has dialled and set its sockets up.
        (&client).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        (&client).read_exact(&mut one).unwrap();
        for (side, found) in [
            (
                "client",
                notsent_lowat_towards(client.local_addr().unwrap()),
            ),
            ("upstream", notsent_lowat_towards(backend)),
        ] {
            assert_eq!(
                found.len(),
                1,
                "{name}: one relay socket to the {side}: {found:?}"
            );
            match want {
                Some(w) => assert_eq!(found[0], w, "{name}: the relay's socket to the {side}"),
                None => assert!(
                    unset.contains(&found[0]),
                    "{name}: the relay's socket to the {side} has {} (unset: {unset:?})",
                    found[0]
                ),
            }
        }
        client.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        (&client).read_to_end(&mut rest).unwrap();
        echo.join().unwrap().unwrap();
        proxy.stop();
    }
}
