//! Happy Eyeballs (RFC 8305) in `Dialer::dial` and `Dialer::dial_async`, on a
//! dual-stack test network: an address list `[IPv6, IPv4]` where the IPv6
//! address is black-holed (an `ip6tables` DROP rule in the server namespace)
//! connects over IPv4 after the fallback delay, not the connect timeout; IPv6
//! wins when both answer; the losing attempt's socket is closed (the process
//! has exactly one more fd after a dial); `set_fallback_delay(None)` dials
//! serially.
//!
//! The tests of this file take a lock, so the fd counts of one are not
//! disturbed by another running in the same process (`cargo test`).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus, DEFAULT_FALLBACK_DELAY};
use mptcp_testnet::{Endpoints, TestNet};
use socket2::{Domain, Protocol};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Net {
    net: TestNet,
    v4: IpAddr,
    v6: IpAddr,
}

impl Net {
    fn new() -> Net {
        let net = TestNet::builder()
            .paths(1)
            .ipv4(true)
            .ipv6(true)
            .endpoints(Endpoints::None)
            .build()
            .unwrap_or_else(|e| {
                panic!("this test needs a dual-stack test network (root, iproute2): {e}")
            });
        let v4 = net.server().addr(0).expect("IPv4 is on");
        let v6 = net.server().addr6(0).expect("IPv6 is on");
        Net { net, v4, v6 }
    }

    /// An MPTCP listener in the server namespace.
    fn listen(&self, ip: IpAddr, port: u16) -> TcpListener {
        self.net
            .server()
            .run(|| ListenConfig::new().listen((ip, port)))
            .unwrap()
            .unwrap()
    }

    /// Silently drops TCP to `port` over IPv6 (`v6`) or IPv4 at the server: a
    /// black hole, no RST. Removed with the namespace, or by [`Net::open_hole`].
    fn black_hole(&self, v6: bool, port: u16) {
        self.rule(v6, "-A", port);
    }

    fn open_hole(&self, v6: bool, port: u16) {
        self.rule(v6, "-D", port);
    }

    fn rule(&self, v6: bool, op: &str, port: u16) {
        let tool = if v6 { "ip6tables" } else { "iptables" };
        let port = port.to_string();
        self.net
            .server()
            .exec(
                tool,
                [op, "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"],
            )
            .unwrap_or_else(|e| panic!("this test needs {tool} (scripts/test installs it): {e}"));
    }

    fn addrs(&self, port: u16) -> [SocketAddr; 2] {
        [
            SocketAddr::new(self.v6, port),
            SocketAddr::new(self.v4, port),
        ]
    }
}

/// What one dial gave.
struct Dialed {
    result: io::Result<TcpStream>,
    elapsed: Duration,
    /// Open fds of the process after the dial (the stream still open) minus before.
    extra_fds: usize,
}

impl Dialed {
    fn stream(&self) -> &TcpStream {
        match &self.result {
            Ok(stream) => stream,
            Err(err) => panic!("dial failed after {:?}: {err}", self.elapsed),
        }
    }

    fn peer(&self) -> SocketAddr {
        self.stream().peer_addr().unwrap()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn dial(net: &Net, dialer: &Dialer, addrs: &[SocketAddr], blocking: bool) -> Dialed {
    net.net
        .client()
        .run(|| {
            if blocking {
                let before = open_fds();
                let start = Instant::now();
                let result = dialer.dial(addrs);
                let elapsed = start.elapsed();
                Dialed {
                    result,
                    elapsed,
                    extra_fds: open_fds() - before,
                }
            } else {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let before = open_fds();
                    let start = Instant::now();
                    let result = dialer.dial_async(addrs).await;
                    let elapsed = start.elapsed();
                    let extra_fds = open_fds() - before;
                    Dialed {
                        result: result.and_then(|s| s.into_std()),
                        elapsed,
                        extra_fds,
                    }
                })
            }
        })
        .unwrap()
}

fn mode(blocking: bool) -> &'static str {
    if blocking {
        "dial"
    } else {
        "dial_async"
    }
}

/// Accepts what is queued on `listener` within `wait`.
fn accept_all(listener: &TcpListener, wait: Duration) -> Vec<TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let until = Instant::now() + wait;
    let mut accepted = Vec::new();
    while Instant::now() < until {
        match listener.accept() {
            Ok((stream, _)) => accepted.push(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    accepted
}

#[test]
fn a_black_holed_ipv6_address_falls_back_to_ipv4_after_the_delay() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let port = 7401;
    let v4_listener = net.listen(net.v4, port);
    let v6_listener = net.listen(net.v6, port);
    net.black_hole(true, port);
    // Every attempt's socket goes through the same path: MPTCP, keep-alive, hook.
    let opened = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&opened);
    let mut dialer = Dialer::new();
    dialer
        .set_timeout(Some(CONNECT_TIMEOUT))
        .set_socket_hook(move |socket| {
            let what = (socket.domain()?, socket.protocol()?, socket.keepalive()?);
            seen.lock().unwrap().push(what);
            Ok(())
        });
    assert_eq!(dialer.fallback_delay(), Some(DEFAULT_FALLBACK_DELAY));
    for blocking in [true, false] {
        opened.lock().unwrap().clear();
        let d = dial(&net, &dialer, &net.addrs(port), blocking);
        let m = mode(blocking);
        assert_eq!(
            *opened.lock().unwrap(),
            [
                (Domain::IPV6, Some(Protocol::MPTCP), true),
                (Domain::IPV4, Some(Protocol::MPTCP), true)
            ],
            "{m}: the sockets the hook saw"
        );
        eprintln!(
            "{m}: IPv6 black-holed, connected over IPv4 in {:?}",
            d.elapsed
        );
        assert_eq!(d.peer(), SocketAddr::new(net.v4, port), "{m}");
        assert!(
            d.elapsed >= DEFAULT_FALLBACK_DELAY && d.elapsed < Duration::from_millis(1500),
            "{m}: connected after {:?}: expected about the fallback delay, well under the \
             {CONNECT_TIMEOUT:?} timeout",
            d.elapsed
        );
        assert_eq!(
            d.stream().mptcp_status().unwrap(),
            MptcpStatus::Active,
            "{m}"
        );
        // The black-holed IPv6 attempt was still connecting: its socket is closed.
        assert_eq!(d.extra_fds, 1, "{m}: the losing attempt's socket leaked");
        let mut server = accept_all(&v4_listener, Duration::from_millis(50));
        assert_eq!(server.len(), 1, "{m}");
        d.stream().write_all(b"v4").unwrap();
        let mut got = [0u8; 2];
        server[0].set_nonblocking(false).unwrap();
        server[0].read_exact(&mut got).unwrap();
        assert_eq!(&got, b"v4");
        assert_eq!(server[0].mptcp_status().unwrap(), MptcpStatus::Active);
    }
    net.open_hole(true, port);
    assert!(accept_all(&v6_listener, Duration::ZERO).is_empty());
}

#[test]
fn without_happy_eyeballs_the_black_holed_address_eats_its_share_of_the_timeout() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let port = 7402;
    let v4_listener = net.listen(net.v4, port);
    net.black_hole(true, port);
    let timeout = Duration::from_secs(2);
    let mut dialer = Dialer::new();
    dialer.set_timeout(Some(timeout)).set_fallback_delay(None);
    for blocking in [true, false] {
        let d = dial(&net, &dialer, &net.addrs(port), blocking);
        let m = mode(blocking);
        eprintln!("{m}, serial: connected over IPv4 in {:?}", d.elapsed);
        assert_eq!(d.peer(), SocketAddr::new(net.v4, port), "{m}");
        // The IPv6 address gets half of the timeout (two addresses), then IPv4.
        assert!(
            d.elapsed >= timeout / 2 - Duration::from_millis(50) && d.elapsed < timeout,
            "{m}: connected after {:?}, expected about {:?}",
            d.elapsed,
            timeout / 2
        );
        assert_eq!(d.extra_fds, 1, "{m}");
        assert_eq!(accept_all(&v4_listener, Duration::from_millis(50)).len(), 1);
    }
}

#[test]
fn when_both_answer_ipv6_wins_and_only_one_connection_survives() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let port = 7403;
    let v4_listener = net.listen(net.v4, port);
    let v6_listener = net.listen(net.v6, port);
    // With the default delay, IPv6 connects long before IPv4 is tried; with a zero
    // delay both connects are under way together and the loser must be closed.
    for delay in [DEFAULT_FALLBACK_DELAY, Duration::ZERO] {
        let mut dialer = Dialer::new();
        dialer
            .set_timeout(Some(CONNECT_TIMEOUT))
            .set_fallback_delay(Some(delay));
        for blocking in [true, false] {
            let m = format!("{}, delay {delay:?}", mode(blocking));
            let d = dial(&net, &dialer, &net.addrs(port), blocking);
            eprintln!("{m}: connected to {} in {:?}", d.peer(), d.elapsed);
            assert_eq!(d.extra_fds, 1, "{m}: the losing attempt's socket leaked");
            assert_eq!(d.stream().mptcp_status().unwrap(), MptcpStatus::Active);
            if delay > Duration::ZERO {
                assert_eq!(d.peer(), SocketAddr::new(net.v6, port), "{m}");
                assert!(d.elapsed < delay, "{m}: {:?}", d.elapsed);
            }
            d.stream().write_all(b"hi").unwrap();
            let winner_is_v6 = d.peer().is_ipv6();
            let wait = Duration::from_millis(if delay > Duration::ZERO { 400 } else { 100 });
            let v6 = accept_all(&v6_listener, wait);
            let v4 = accept_all(&v4_listener, Duration::ZERO);
            let (mut won, lost) = if winner_is_v6 { (v6, v4) } else { (v4, v6) };
            assert_eq!(won.len(), 1, "{m}");
            won[0].set_nonblocking(false).unwrap();
            let mut got = [0u8; 2];
            won[0].read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hi", "{m}");
            if delay > Duration::ZERO {
                assert!(lost.is_empty(), "{m}: the IPv4 race was started");
            }
            // A loser that got as far as the server's accept queue was closed by the
            // client: the server reads EOF or a reset, never data.
            assert!(lost.len() <= 1, "{m}");
            eprintln!(
                "{m}: the loser reached the server's accept queue: {}",
                lost.len()
            );
            for mut conn in lost {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut b = [0u8; 1];
                match conn.read(&mut b) {
                    Ok(0) => {}
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                    other => panic!("{m}: the losing connection is still open: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn failed_primaries_start_the_fallback_at_once_and_their_error_is_returned() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let port = 7404;
    // Nothing listens on IPv6: refused at once.
    let _v4_listener = net.listen(net.v4, port);
    let mut dialer = Dialer::new();
    dialer.set_timeout(Some(CONNECT_TIMEOUT));
    for blocking in [true, false] {
        let m = mode(blocking);
        let d = dial(&net, &dialer, &net.addrs(port), blocking);
        eprintln!("{m}: IPv6 refused, connected over IPv4 in {:?}", d.elapsed);
        assert_eq!(d.peer(), SocketAddr::new(net.v4, port), "{m}");
        assert!(d.elapsed < DEFAULT_FALLBACK_DELAY, "{m}: {:?}", d.elapsed);
        assert_eq!(d.extra_fds, 1, "{m}");
    }
    // Both fail: IPv6 refused, IPv4 black-holed until its timeout. The error is the
    // primary's (refused), as Go returns, not the fallback's timeout.
    net.black_hole(false, port);
    dialer.set_timeout(Some(Duration::from_millis(600)));
    for blocking in [true, false] {
        let m = mode(blocking);
        let d = dial(&net, &dialer, &net.addrs(port), blocking);
        eprintln!("{m}: both failed after {:?}", d.elapsed);
        let err = d
            .result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{m}: connected"));
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{m}: {err}");
        assert!(
            d.elapsed >= Duration::from_millis(500) && d.elapsed < Duration::from_secs(2),
            "{m}: failed after {:?}, expected the 600 ms timeout",
            d.elapsed
        );
        assert_eq!(d.extra_fds, 0, "{m}");
    }
}
