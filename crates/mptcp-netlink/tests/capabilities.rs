//! Without CAP_NET_ADMIN, writes fail with the "needs CAP_NET_ADMIN" error.
//!
//! The parent test runs this test binary again, as a child process inside a fresh
//! namespace (`ip netns exec`), selecting only the `#[ignore]`d child test; the child
//! drops CAP_NET_ADMIN from its thread's effective and permitted sets (`capset`) before
//! opening any socket, then tries every write.

mod common;

use std::net::SocketAddr;

use mptcp_netlink::{EndpointFlags, Error, Events, Limits, NewEndpoint, PathManager};
use rustix::thread::{capabilities, set_capabilities, CapabilitySet};

const CHILD_ENV: &str = "MPTCP_NETLINK_CAP_CHILD";
const CHILD_TEST: &str = "child_without_cap_net_admin";

#[test]
fn writes_without_cap_net_admin_fail_with_a_clear_error() {
    let ns = common::netns("nocap");
    // An endpoint the child will try to delete and change.
    common::ip(
        &ns,
        &[
            "mptcp",
            "endpoint",
            "add",
            "198.18.0.1",
            "id",
            "1",
            "subflow",
        ],
    );
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = ns
        .command(&exe)
        .args([
            "--exact",
            CHILD_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} in the namespace: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("child stdout:\n{stdout}\nchild stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "the child test failed: {}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child test did not run"
    );
    assert_eq!(
        stdout.matches("needs CAP_NET_ADMIN").count(),
        9,
        "every write refused"
    );
    // Nothing changed.
    let endpoints = common::ip_endpoints(&ns);
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(common::ip_limits(&ns), (2, 0));
}

#[test]
#[ignore = "run by writes_without_cap_net_admin_fail_with_a_clear_error in a child process"]
fn child_without_cap_net_admin() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "this test only runs as the child of writes_without_cap_net_admin_fail_with_a_clear_error"
    );
    let mut caps = capabilities(None).expect("capget");
    assert!(
        caps.effective.contains(CapabilitySet::NET_ADMIN),
        "the child must start with CAP_NET_ADMIN for the test to mean anything (run as root)"
    );
    caps.effective.remove(CapabilitySet::NET_ADMIN);
    caps.permitted.remove(CapabilitySet::NET_ADMIN);
    caps.inheritable.remove(CapabilitySet::NET_ADMIN);
    set_capabilities(None, caps).expect("capset: drop CAP_NET_ADMIN");
    assert!(!capabilities(None)
        .unwrap()
        .effective
        .contains(CapabilitySet::NET_ADMIN));

    let pm = PathManager::open().expect("opening needs no privilege");
    // Reads need no privilege.
    assert_eq!(
        pm.limits().unwrap(),
        Limits {
            subflows: 2,
            add_addr_accepted: 0
        }
    );
    assert_eq!(
        pm.endpoints().unwrap().len(),
        1,
        "listing needs no privilege"
    );
    let v4 = "198.18.0.2".parse().unwrap();
    let peer: SocketAddr = "198.18.0.9:80".parse().unwrap();
    let local: SocketAddr = "198.18.0.2:0".parse().unwrap();
    let refused = [
        pm.add_endpoint(&NewEndpoint::new(v4).flags(EndpointFlags::SUBFLOW))
            .map(drop),
        pm.delete_endpoint(1),
        pm.flush_endpoints(),
        pm.set_endpoint_flags(1, EndpointFlags::BACKUP),
        pm.set_limits(Limits {
            subflows: 1,
            add_addr_accepted: 1,
        }),
        pm.announce(1, 5, v4, None),
        pm.remove(1, 5),
        pm.create_subflow(1, 5, local, peer),
        Events::subscribe().map(drop),
    ];
    for (i, result) in refused.into_iter().enumerate() {
        let e = result.expect_err("refused without CAP_NET_ADMIN");
        println!("write {i}: {e}");
        assert!(
            matches!(e, Error::PermissionDenied { .. }),
            "write {i}: {e:?}"
        );
        assert!(e.to_string().contains("needs CAP_NET_ADMIN"), "{e}");
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::PermissionDenied
        );
    }
    // Validation still comes first.
    let e = pm
        .set_limits(Limits {
            subflows: 9,
            add_addr_accepted: 0,
        })
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
}
