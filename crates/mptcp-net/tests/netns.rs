//! Behaviour that needs a fresh network namespace: `net.mptcp.enabled=0`,
//! and exact connect counts read from the kernel's own counters.
//!
//! Needs root and iproute2 (mptcp-testnet says what is missing).

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::{assert_same, echo_server, pattern, round_trip};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus, Support, Unavailable};
use mptcp_testnet::Netns;

fn netns(label: &str) -> Netns {
    Netns::new(label).unwrap_or_else(|e| panic!("cannot create a test namespace: {e}"))
}

fn active_opens(ns: &Netns) -> u64 {
    ns.counters()
        .unwrap()
        .get("Tcp", "ActiveOpens")
        .expect("Tcp ActiveOpens counter")
}

#[test]
fn disabled_sysctl_falls_back_and_required_names_the_sysctl() {
    let ns = netns("disabled");
    ns.set_sysctl("net.mptcp.enabled", "0").unwrap();
    ns.run(|| {
        assert_eq!(
            mptcp_net::support().unwrap(),
            Support::Unavailable(Unavailable::DisabledBySysctl)
        );
        // Default policy: TCP on both ends, data intact.
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        let addr = listener.local_addr().unwrap();
        let server = echo_server(listener);
        let client = Dialer::new().dial(addr).unwrap();
        assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        let data = pattern(200_000);
        assert_same(&round_trip(&client, &data).unwrap(), &data, "echo");
        assert_eq!(server.join().unwrap().unwrap(), MptcpStatus::PlainTcp);

        // Required: an error naming the sysctl and the fix, for both.
        let mut dialer = Dialer::new();
        dialer.require_multipath_tcp(true);
        let err = dialer.dial(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(msg.contains("net.mptcp.enabled=0"), "{msg}");
        assert!(msg.contains("sysctl -w net.mptcp.enabled=1"), "{msg}");
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<Unavailable>()),
            Some(&Unavailable::DisabledBySysctl)
        );
        let mut lc = ListenConfig::new();
        lc.require_multipath_tcp(true);
        let err = lc.listen("127.0.0.1:0").unwrap_err();
        assert!(err.to_string().contains("net.mptcp.enabled=0"), "{err}");

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = ListenConfig::new().listen_async("[::1]:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let s = Dialer::new().dial_async(addr).await.unwrap();
            assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
            let err = dialer.dial_async(addr).await.unwrap_err();
            assert!(err.to_string().contains("net.mptcp.enabled=0"), "{err}");
        });
    })
    .unwrap();

    // Remembered for at most a second: turning MPTCP back on takes effect
    // within mptcp_net::DISABLED_MEMORY.
    ns.set_sysctl("net.mptcp.enabled", "1").unwrap();
    let switched = std::time::Instant::now();
    ns.run(|| {
        assert!(mptcp_net::support().unwrap().is_available());
        loop {
            let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
            let client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
            if client.mptcp_status().unwrap() == MptcpStatus::Active {
                break;
            }
            assert!(
                switched.elapsed()
                    < mptcp_net::DISABLED_MEMORY + std::time::Duration::from_millis(200),
                "still plain TCP {:?} after net.mptcp.enabled=1",
                switched.elapsed()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!(
            "MPTCP again {:?} after the sysctl went back to 1",
            switched.elapsed()
        );
    })
    .unwrap();
}

/// A thread that saw MPTCP disabled in one namespace and then moves (setns) to
/// another where it is enabled gets MPTCP there at once: the memory of the
/// disabled namespace is keyed by the namespace.
#[test]
fn a_thread_that_changes_namespace_is_not_misled() {
    use std::os::fd::AsRawFd;
    let off = netns("off");
    off.set_sysctl("net.mptcp.enabled", "0").unwrap();
    let on = netns("on");
    let target = std::fs::File::open(format!("/run/netns/{}", on.name())).unwrap();
    off.run(|| {
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let s = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
        assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        // The same thread, now in the other namespace.
        // SAFETY: `target` is an open nsfs file for the whole call.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::Active);
        let s = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
        assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::Active);
    })
    .unwrap();
}

/// A refused connect is one SYN, one error, no second dial, sync and async,
/// IPv4 and IPv6. (Go re-dials with TCP here; the `mptcp` crate returns Ok
/// from its tokio connect.)
#[test]
fn refused_connect_is_one_attempt_and_connection_refused() {
    let ns = netns("refused");
    for target in ["127.0.0.1:9", "[::1]:9"] {
        let before = active_opens(&ns);
        let hook_runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let runs = hook_runs.clone();
        let mut dialer = Dialer::new();
        dialer.set_socket_hook(move |_| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        let err = ns.run(|| dialer.dial(target).unwrap_err()).unwrap();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{target}: {err}");
        assert_eq!(active_opens(&ns) - before, 1, "{target}: one connect, sync");
        assert_eq!(hook_runs.load(std::sync::atomic::Ordering::SeqCst), 1);

        let before = active_opens(&ns);
        let err = ns
            .run(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(dialer.dial_async(target)).unwrap_err()
            })
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{target}: {err}");
        assert_eq!(
            active_opens(&ns) - before,
            1,
            "{target}: one connect, async"
        );
        assert_eq!(hook_runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        let mptcp_syns = ns.counters().unwrap().mptcp("MPCapableSYNTX");
        println!("{target}: refused twice; MPCapableSYNTX so far {mptcp_syns}");
        assert!(mptcp_syns >= 2, "the SYNs were MPTCP SYNs");
    }
}

/// A dial to a listener whose accept queue is full (SYNs dropped) times out
/// after one connect, sync and async.
#[test]
fn timeout_is_one_attempt_and_timed_out() {
    let ns = netns("timeout");
    ns.run(|| {
        use mptcp_net::socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue (backlog 0 holds one connection).
        let _queued = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));

        let opens = || {
            let t = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
            let mut lines = t.lines().filter(|l| l.starts_with("Tcp:"));
            let (head, vals) = (lines.next().unwrap(), lines.next().unwrap());
            let i = head.split(' ').position(|f| f == "ActiveOpens").unwrap();
            vals.split(' ').nth(i).unwrap().parse::<u64>().unwrap()
        };
        let mut dialer = Dialer::new();
        dialer.set_timeout(Some(Duration::from_millis(400)));

        let before = opens();
        let start = Instant::now();
        let err = dialer.dial(addr).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_eq!(opens() - before, 1, "one connect, sync");
        println!("sync dial timed out after {took:?} (timeout 400ms)");
        assert!(took >= Duration::from_millis(350), "{took:?}");

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let before = opens();
        let start = Instant::now();
        let err = rt.block_on(dialer.dial_async(addr)).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_eq!(opens() - before, 1, "one connect, async");
        println!("async dial timed out after {took:?} (timeout 400ms)");
    })
    .unwrap();
}
