//! The userspace path manager, per connection token, on a live two-path connection.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_netlink::{connections, sysctl, Error, Event, EventKind, Events, PathManager};
use mptcp_testnet::{Endpoints, TestNet};

const PORT: u16 = 5201;

/// Waits up to 5 s for `cond`, polling.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> T, cond: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = probe();
        if cond(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn next_of(events: &mut Events, kind: EventKind) -> Event {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left).expect("read events") {
            Some(e) if e.kind == kind => return e,
            Some(_) => {}
            None => panic!("no {kind} event within 5 s"),
        }
    }
}

#[test]
fn create_and_destroy_a_subflow_announce_and_remove_by_token() {
    let net = TestNet::builder()
        .paths(2)
        .endpoints(Endpoints::None)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a 2-path test network: {e}"));
    let (client, server) = (net.client(), net.server());
    // Through our sysctl module, read back through the test network's.
    client
        .run(|| sysctl::set("net.mptcp.path_manager", "userspace"))
        .unwrap()
        .expect("select the userspace path manager");
    assert_eq!(
        client.sysctl("net.mptcp.path_manager").unwrap(),
        "userspace"
    );
    assert_eq!(
        client.run(|| sysctl::get("path_manager")).unwrap().unwrap(),
        "userspace"
    );

    let mut server_events = server.run(Events::subscribe).unwrap().expect("subscribe");
    let listener = server
        .run(|| ListenConfig::new().listen(("0.0.0.0", PORT)))
        .unwrap()
        .expect("listen");
    let server_addr = SocketAddr::new(server.addr(0).unwrap(), PORT);
    let mut stream = client
        .run(|| Dialer::new().dial(server_addr))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    stream.write_all(b"ping").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();
    let token = stream.mptcp_info().unwrap().expect("MPTCP is active").token;
    assert_eq!(
        stream.subflows().unwrap().len(),
        1,
        "no endpoint: one subflow"
    );

    let pm = client
        .run(PathManager::open)
        .unwrap()
        .expect("open path manager");
    let local = SocketAddr::new(client.addr(1).unwrap(), 0);
    pm.create_subflow(token, 2, local, server_addr)
        .expect("create a subflow by token");
    let subflows = eventually(
        "a second subflow",
        || stream.subflows().unwrap(),
        |s| s.len() == 2,
    );
    println!("subflows after create: {subflows:#?}");
    let conns = client.run(connections).unwrap().unwrap();
    let conn = conns
        .iter()
        .find(|c| c.token == Some(token))
        .expect("listed");
    assert_eq!(conn.subflows.len(), 2, "{conn}");
    let new = conn
        .subflows
        .iter()
        .find(|s| s.local.ip() == client.addr(1).unwrap())
        .expect("the new subflow, from the path-1 address");
    assert_eq!(new.local_id, Some(2), "{new}");
    assert_eq!(new.remote, server_addr);

    // A subflow that does not exist, a wrong token.
    let e = pm
        .destroy_subflow(
            token,
            SocketAddr::new(client.addr(1).unwrap(), 1),
            server_addr,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Kernel {
                errno: libc::ESRCH,
                ..
            }
        ),
        "{e:?}"
    );
    let e = pm
        .create_subflow(token ^ 1, 3, local, server_addr)
        .unwrap_err();
    println!("wrong token: {e}");
    assert!(e.to_string().contains("invalid token"), "{e}");

    pm.destroy_subflow(token, new.local, server_addr)
        .expect("destroy the subflow");
    eventually(
        "back to one subflow",
        || stream.subflows().unwrap(),
        |s| s.len() == 1,
    );
    let e = next_of(&mut server_events, EventKind::SubClosed);
    assert_eq!(e.remote, Some(new.local), "{e}");

    // Announce the client's path-1 address with id 5, then withdraw it: the server's
    // path manager sees both.
    pm.announce(token, 5, client.addr(1).unwrap(), None)
        .expect("announce");
    let e = next_of(&mut server_events, EventKind::Announced);
    assert_eq!(e.remote_id, Some(5), "{e}");
    assert_eq!(e.remote.map(|a| a.ip()), client.addr(1), "{e}");
    pm.remove(token, 5).expect("remove");
    let e = next_of(&mut server_events, EventKind::Removed);
    assert_eq!(e.remote_id, Some(5), "{e}");

    // The connection still works.
    stream.write_all(b"pong").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();
}
