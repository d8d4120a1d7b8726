//! The registry end to end over UDP, inside a fresh network namespace:
//! `PublisherSocket` -> `RegistryServer` -> the update sink, a forged sender
//! counted as `bad_mac`, and the sustained message rate on loopback (printed,
//! not asserted).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_steer::registry::{Key, Publisher, Registry, RegistryStats, Update};
use mptcp_steer::{PublisherSocket, RegistryServer};
use mptcp_testnet::Netns;

fn key() -> Key {
    Key::new(b"end-to-end registry key".to_vec()).unwrap()
}

/// Waits until `done` holds for the registry's counters (5 s at most).
fn wait_for(
    registry: &Mutex<Registry>,
    what: &str,
    done: impl Fn(&RegistryStats) -> bool,
) -> RegistryStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = registry.lock().unwrap().stats();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn end_to_end(listen: SocketAddr, backend: IpAddr) {
    let ns = Netns::new("steer-reg").expect("a network namespace (root and iproute2 needed)");
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new(key(), [(backend, 0x101)]).unwrap();
        let server = rt.block_on(RegistryServer::bind(listen, registry)).unwrap();
        let addr = server.local_addr().unwrap();
        let shared = server.registry();
        let seen: Arc<Mutex<Vec<Update>>> = Arc::default();
        let sink = {
            let seen = Arc::clone(&seen);
            move |u: &Update| {
                seen.lock().unwrap().push(*u);
                Ok(())
            }
        };
        let mut publisher = PublisherSocket::connect(addr, Publisher::new(key(), backend)).unwrap();
        let per = publisher.publisher().ops_per_datagram();
        let batched = 10 * 20 * per;
        let mut forger = PublisherSocket::connect(
            addr,
            Publisher::new(Key::new(b"an attacker's guess".to_vec()).unwrap(), backend),
        )
        .unwrap();
        let serve = std::thread::scope(|s| {
            let client = s.spawn(|| {
                // A daemon's start: reset plus 1000 tokens, five datagrams.
                publisher.publisher_mut().snapshot(1..=1000);
                assert_eq!(publisher.flush().unwrap(), 5);
                wait_for(&shared, "the snapshot", |s| s.accepted_messages == 5);
                assert_eq!(publisher.remove(500).unwrap(), 1);
                forger.publisher_mut().snapshot([0xbad]);
                assert_eq!(forger.flush().unwrap(), 1);
                let s = wait_for(&shared, "remove and forgery", |s| {
                    s.accepted_messages == 6 && s.bad_mac == 1
                });
                assert_eq!(s.accepted_ops, 1002);

                // Sustained rate: one Add per datagram (a connection as the
                // backend reports it), windows of 100 so no datagram is lost
                // to a full receive buffer (rmem_max caps it in a fresh namespace).
                let start = Instant::now();
                let rounds = 200;
                for r in 0..rounds {
                    for i in 0..100 {
                        publisher.add(1_000_000 + r * 100 + i).unwrap();
                    }
                    let want = 6 + u64::from(r + 1) * 100;
                    wait_for(&shared, "the rate run", |s| s.accepted_messages == want);
                }
                let secs = start.elapsed().as_secs_f64();
                let n = f64::from(rounds * 100);
                println!(
                    "registry over UDP on loopback ({}): {:.0} messages/s ({n} single-Add datagrams in {secs:.3} s)",
                    addr,
                    n / secs
                );

                // Batched: full datagrams of Adds, 20 at a time.
                let per = per as u32;
                let start = Instant::now();
                let mut want = 6 + u64::from(rounds) * 100;
                for r in 0..10u32 {
                    for i in 0..20 * per {
                        publisher.publisher_mut().add(2_000_000 + r * 20 * per + i);
                    }
                    assert_eq!(publisher.flush().unwrap(), 20);
                    want += 20;
                    wait_for(&shared, "the batched run", |s| s.accepted_messages == want);
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "registry over UDP on loopback ({addr}): {:.0} tokens/s batched {per} per datagram",
                    f64::from(10 * 20 * per) / secs
                );
            });
            let result = rt.block_on(async {
                tokio::select! {
                    r = server.run(sink) => r,
                    _ = async {
                        while !client.is_finished() {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    } => Ok(()),
                }
            });
            client.join().unwrap();
            result
        });
        serve.unwrap();

        let r = shared.lock().unwrap();
        assert_eq!(r.len(), 999 + 20_000 + batched);
        assert_eq!(r.mark_of(1), Some(0x101));
        assert_eq!(r.mark_of(500), None);
        assert_eq!(r.mark_of(0xbad), None);
        assert_eq!(r.tokens_of(backend).unwrap().len(), 999 + 20_000 + batched);
        let s = r.stats();
        assert_eq!((s.bad_mac, s.replayed, s.stale, s.malformed), (1, 0, 0, 0));
        println!(
            "registry memory: {:.1} bytes per token ({} tokens)",
            r.memory_bytes() as f64 / r.len() as f64,
            r.len()
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1000 + 1 + 20_000 + batched);
        assert_eq!(seen[1000], Update::Remove { token: 500 });
        assert!(seen[..1000].iter().all(|u| matches!(u, Update::Insert { mark: 0x101, .. })));
    })
    .unwrap();
}

#[test]
fn publisher_to_server_ipv4() {
    end_to_end(
        "127.0.0.1:0".parse().unwrap(),
        "198.19.0.2".parse().unwrap(),
    );
}

#[test]
fn publisher_to_server_ipv6() {
    end_to_end(
        "[::1]:0".parse().unwrap(),
        "2001:db8:10::2".parse().unwrap(),
    );
}
