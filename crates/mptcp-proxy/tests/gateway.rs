//! The gateway roles on the shared session pipeline: what the proxy's relay
//! has, the gateway has too (forced drain, subflow sampling, dials that wait
//! for a descriptor).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::gateway::{run_gateway, socks5_connect, RunningGateway};
use common::{
    check_drain_then_reset, echo_backend, pattern, require_mptcp, round_trip, wait_records,
};
use mptcp_proxy::gateway::{ConverterRetry, GatewayConfig, GatewayEnd, Mode};

fn socks5_config() -> GatewayConfig {
    GatewayConfig::new("127.0.0.1:0".parse().unwrap(), Mode::Socks5)
}

#[test]
fn gateway_drains_then_resets_at_the_deadline() {
    require_mptcp();
    let (backend, _echo) = echo_backend(1);
    let mut config = socks5_config();
    config.drain_timeout = Duration::from_millis(800);
    let gw = RunningGateway::start(config);
    let addr = gw.started.addr;
    let records = std::sync::Arc::clone(&gw.started.records);
    let mut open = socks5_connect(addr, backend).unwrap();
    let mut b = [0u8; 4];
    open.write_all(b"ping").unwrap();
    open.read_exact(&mut b).unwrap();
    let stop = gw.started.stop.clone();
    check_drain_then_reset(addr, &mut open, Duration::from_millis(800), &stop, || {
        gw.stop()
    });
    let rec = &wait_records(&records, 1)[0];
    assert_eq!(rec.end, GatewayEnd::Shutdown, "{rec:?}");
    assert_eq!(rec.bytes_to_upstream, 8, "{rec:?}");
}

#[test]
fn gateway_records_the_most_subflows_seen() {
    let net = mptcp_testnet::TestNet::builder()
        .paths(2)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a 2-path test network (root, iproute2): {e}"));
    let server = net.server().addr(0).expect("IPv4 on path 0");
    let gateway_ip = net.client().addr(0).expect("IPv4 on path 0");
    let backend = net
        .server()
        .run(|| mptcp_net::ListenConfig::new().listen((server, 0)))
        .unwrap()
        .expect("an MPTCP listener on the server");
    let dest = backend.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut r = s.try_clone().unwrap();
        std::io::copy(&mut r, &mut s).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let data = pattern(2 << 20);
    thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        // The gateway dials from the client's namespace, over MPTCP.
        let config = GatewayConfig::new(SocketAddr::new(gateway_ip, 0), Mode::Socks5);
        let runner = scope.spawn(|| net.client().run(move || run_gateway(config, tx)).unwrap());
        let gw = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("gateway started");
        let back = net
            .client()
            .run(|| {
                let s = socks5_connect(gw.addr, dest)?;
                // Time for the second path's subflow to join, and for a
                // watchdog tick, before the end.
                thread::sleep(Duration::from_millis(1500));
                round_trip(&s, &data)
            })
            .unwrap()
            .unwrap();
        assert!(back == data, "the echo differs");
        let rec = wait_records(&gw.records, 1).remove(0);
        gw.stop.shutdown();
        assert_eq!(runner.join().unwrap(), 0);
        assert_eq!(rec.end, GatewayEnd::Closed, "{rec:?}");
        assert_eq!(
            rec.upstream_mptcp,
            Some(mptcp_net::MptcpStatus::Active),
            "{rec:?}"
        );
        assert_eq!(rec.upstream_subflows, Some(2), "{rec:?}");
        // The local client is plain TCP: one subflow, no system call asked.
        assert_eq!(rec.client_subflows, Some(1), "{rec:?}");
    });
    echo.join().unwrap();
}

/// An echo server and SOCKS5 clients in a Python process, so that their
/// descriptors do not count against this process's limit. It prints the echo
/// port, reads the gateway's, opens `HOLD` tunnels and keeps them, starts
/// `FLOOD` more at once (each kept 0.2 s after its echo), closes the held ones
/// half a second later, and prints
/// how many of the flood got their echo and the errors of the others.
const CLIENTS: &str = r#"
import json, socket, struct, sys, threading, time
HOLD, FLOOD = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(256)
def echo(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b: return
            c.sendall(b)
def serve():
    while True:
        c, _ = ls.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
print(ls.getsockname()[1], flush=True)
gw = int(sys.stdin.readline())
def tunnel():
    s = socket.create_connection(("127.0.0.1", gw), timeout=15)
    s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", ls.getsockname()[1]))
    r = b""
    while len(r) < 10:
        k = s.recv(10 - len(r))
        if not k: raise OSError("closed during the SOCKS5 reply")
        r += k
    if r[1] != 0: raise OSError("SOCKS5 reply %d" % r[1])
    return s
def hello(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        k = s.recv(len(msg) - len(got))
        if not k: raise OSError("closed before the echo")
        got += k
    assert got == msg
held = []
for i in range(HOLD):
    s = tunnel(); hello(s, b"held %d" % i); held.append(s)
ok, errors = [0], []
lock = threading.Lock()
def flood(i):
    try:
        s = tunnel(); hello(s, b"flood %d" % i); time.sleep(0.2); s.close()
        with lock: ok[0] += 1
    except Exception as e:
        with lock: errors.append(repr(e))
threads = [threading.Thread(target=flood, args=(i,)) for i in range(FLOOD)]
for t in threads: t.start()
time.sleep(0.5)
for s in held: s.close()
for t in threads: t.join()
print(json.dumps({"ok": ok[0], "errors": errors}), flush=True)
"#;

/// The `RLIMIT_NOFILE` under which this process can open exactly `room` more
/// descriptors: a new descriptor takes the lowest free number, and the limit
/// bounds the number (descriptors open above it stay open).
fn limit_leaving(room: u64) -> u64 {
    // Listing /proc/self/fd opens a descriptor of its own, which the listing
    // shows: the lowest free number, found by opening one first.
    let probe = std::fs::File::open("/dev/null").unwrap();
    let own = std::os::fd::AsRawFd::as_raw_fd(&probe) as u64;
    drop(probe);
    let open: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd != own)
        .collect();
    let mut limit = 0;
    let mut free = 0;
    while free < room {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    limit
}

#[test]
fn gateway_dials_wait_for_a_descriptor_under_pressure() {
    require_mptcp();
    const HOLD: usize = 3;
    const FLOOD: usize = 12;
    let mut py = Command::new("python3")
        .args(["-c", CLIENTS, &HOLD.to_string(), &FLOOD.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = std::io::BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(!line.is_empty(), "the Python clients did not start");
    let gw = RunningGateway::start(socks5_config());
    // Room for the held pairs and one more descriptor: the first client of the
    // flood is accepted and its dial finds none; it waits until the held pairs
    // close, and the flood is then served a few pairs at a time.
    let limit = limit_leaving(2 * HOLD as u64 + 1);
    println!("RLIMIT_NOFILE {limit}");
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: hard,
        },
    )
    .expect("lower RLIMIT_NOFILE");
    let mut stdin = py.stdin.take().unwrap();
    writeln!(stdin, "{}", gw.started.addr.port()).unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let result: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{e}: the Python clients said {line:?}"));
    assert!(py.wait().unwrap().success());
    assert_eq!(result["ok"], FLOOD, "{result}");
    let text = gw.started.metrics.encode();
    let dial_waits = text
        .lines()
        .find(|l| l.starts_with("mptcp_proxy_errors_total{kind=\"dial_fd_limit\","))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
        .collect();
    assert!(
        dial_waits > 0,
        "no dial waited for a descriptor (limit {limit}, open now {fds:?}):\n{text}"
    );
    let records = wait_records(&gw.started.records, HOLD + FLOOD);
    assert!(
        records.iter().all(|r| r.end == GatewayEnd::Closed),
        "{records:#?}"
    );
}

/// What the hand-made converter of [`fake_converter`] does with one connection.
#[derive(Clone, Copy, Debug)]
enum Converter {
    /// Reads the Convert message, then closes without an answer.
    Closes,
    /// Reads the Convert message and never answers (holds the connection until
    /// the gateway gives it up).
    Silent,
    /// Reads the Convert message, answers it (no TLV: success) and echoes.
    Answers,
}

/// A converter on loopback that treats its connections as `script` says, in
/// order; returns its address and, once done, the Convert messages it read.
fn fake_converter(script: Vec<Converter>) -> (SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = mptcp_net::ListenConfig::new()
        .listen("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .expect("an MPTCP listener on loopback");
    let addr = listener.local_addr().unwrap();
    let run = thread::spawn(move || {
        let mut read = Vec::new();
        for step in script {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut msg = [0u8; 24];
            s.read_exact(&mut msg).unwrap();
            read.push(msg.to_vec());
            match step {
                Converter::Closes => drop(s),
                Converter::Silent => {
                    // Until the gateway resets it.
                    let mut b = [0u8; 1];
                    let _ = s.read(&mut b);
                }
                Converter::Answers => {
                    let ok = mptcp_proxy::convert::encode(&Default::default()).unwrap();
                    s.write_all(&ok).unwrap();
                    let mut b = [0u8; 64];
                    loop {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => s.write_all(&b[..n]).unwrap(),
                        }
                    }
                }
            }
        }
        read
    });
    (addr, run)
}

/// A converter connection lost before its answer (closed, or silent for the
/// handshake timeout) is given up and the exchange made once more on a new
/// one: nothing of the client's was sent, and the client is served. Twice
/// lost, the client gets the failure.
#[test]
fn gateway_makes_the_convert_exchange_again_when_the_first_gets_no_answer() {
    require_mptcp();
    let dest: SocketAddr = "198.18.7.7:9".parse().unwrap();
    for (script, why, served) in [
        (
            vec![Converter::Closes, Converter::Answers],
            ConverterRetry::Lost,
            true,
        ),
        (
            vec![Converter::Silent, Converter::Answers],
            ConverterRetry::NoAnswer,
            true,
        ),
        (
            vec![Converter::Closes, Converter::Silent],
            ConverterRetry::Lost,
            false,
        ),
    ] {
        let (conv, fake) = fake_converter(script.clone());
        let mut config = socks5_config().converter(conv.to_string());
        config.handshake_timeout = Duration::from_millis(700);
        let gw = RunningGateway::start(config);
        let tunnel = socks5_connect(gw.started.addr, dest);
        if served {
            let mut s = tunnel.unwrap_or_else(|e| panic!("{script:?}: {e}\n{}", gw.dump()));
            s.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hello", "{script:?}");
            drop(s);
        } else {
            let e = tunnel.expect_err("a tunnel though no converter connection answered");
            assert!(e.to_string().contains("SOCKS5 reply"), "{script:?}: {e}");
        }
        let rec = gw.wait_records(1).remove(0);
        assert_eq!(rec.converter_retry, Some(why), "{script:?}: {rec:?}");
        let want_end = if served {
            GatewayEnd::Closed
        } else {
            GatewayEnd::ConnectFailed
        };
        assert_eq!(rec.end, want_end, "{script:?}: {rec:?}");
        let text = gw.started.metrics.encode();
        let line = format!(
            "mptcp_proxy_converter_retries_total{{reason=\"{}\",route=",
            why.as_str()
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&line) && l.ends_with(" 1")),
            "{line}... 1 missing:\n{text}"
        );
        drop(gw);
        // Both connections carried the same Convert message, and only that.
        let read = fake.join().expect("the fake converter");
        assert_eq!(read.len(), 2, "{script:?}");
        assert_eq!(read[0], read[1], "{script:?}");
        assert_eq!(
            mptcp_proxy::convert::parse(&read[0])
                .ok()
                .and_then(|p| match p {
                    mptcp_proxy::convert::Parsed::Done(m, 24) => m.connect(),
                    _ => None,
                }),
            Some(dest),
            "{script:?}"
        );
    }
}
