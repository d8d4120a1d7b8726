//! Endpoints and limits, cross-checked against iproute2 (`ip mptcp`) both ways, each test
//! in a fresh network namespace.

mod common;

use std::net::IpAddr;

use common::{ip, ip_endpoint_fields, ip_endpoints, ip_limits, netns, our_endpoint_fields};
use mptcp_netlink::{EndpointFlags, Error, Limits, NewEndpoint, PathManager};

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn what_we_write_iproute2_reads() {
    let ns = netns("ep-write");
    // A signal endpoint with a port makes the kernel listen there: the address must exist.
    ip(&ns, &["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    let pm = ns
        .run(PathManager::open)
        .unwrap()
        .expect("open path manager");

    let added = ns
        .run(|| -> Result<_, Error> {
            Ok(vec![
                pm.add_endpoint(
                    &NewEndpoint::new(addr("198.18.0.1"))
                        .id(5)
                        .port(5202)
                        .flags(EndpointFlags::SIGNAL),
                )?,
                pm.add_endpoint(
                    &NewEndpoint::new(addr("2001:db8::1"))
                        .flags(
                            EndpointFlags::SUBFLOW
                                | EndpointFlags::BACKUP
                                | EndpointFlags::FULLMESH,
                        )
                        .interface("lo"),
                )?,
                pm.add_endpoint(
                    &NewEndpoint::new(addr("198.18.0.3"))
                        .flags(EndpointFlags::SIGNAL | EndpointFlags::BACKUP),
                )?,
                pm.add_endpoint(
                    &NewEndpoint::new(addr("198.18.0.4")).flags(EndpointFlags::LAMINAR),
                )?,
            ])
        })
        .unwrap()
        .expect("add endpoints");
    assert_eq!(added[0].id, 5);
    assert_eq!(added[0].port, Some(5202));
    assert_eq!(added[1].interface.as_deref(), Some("lo"));
    assert!(
        added[3].flags.contains(EndpointFlags::LAMINAR),
        "{}",
        added[3]
    );
    assert_eq!(
        added[3].to_string(),
        format!("198.18.0.4 id {} laminar", added[3].id)
    );

    // iproute2 sees exactly what we added.
    let theirs: Vec<_> = ip_endpoints(&ns).iter().map(ip_endpoint_fields).collect();
    let ours: Vec<_> = added.iter().map(our_endpoint_fields).collect();
    assert_eq!(theirs, ours);

    pm.set_limits(Limits {
        subflows: 4,
        add_addr_accepted: 3,
    })
    .unwrap();
    assert_eq!(ip_limits(&ns), (4, 3));
    pm.set_limits(Limits {
        subflows: 0,
        add_addr_accepted: 8,
    })
    .unwrap();
    assert_eq!(ip_limits(&ns), (0, 8));

    // Flags: only backup and fullmesh change, both as given.
    let v6 = added[1].id;
    pm.set_endpoint_flags(v6, EndpointFlags::FULLMESH).unwrap();
    let now = ip_endpoints(&ns);
    let entry = now.iter().find(|v| v["id"] == v6).unwrap();
    assert_eq!(entry["backup"].as_bool(), None, "{entry}");
    assert_eq!(entry["fullmesh"].as_bool(), Some(true), "{entry}");
    pm.set_endpoint_flags(v6, EndpointFlags::BACKUP | EndpointFlags::FULLMESH)
        .unwrap();
    let entry = ip_endpoints(&ns)
        .into_iter()
        .find(|v| v["id"] == v6)
        .unwrap();
    assert_eq!(entry["backup"].as_bool(), Some(true), "{entry}");

    // Delete by id, then by address.
    pm.delete_endpoint(5).unwrap();
    let deleted = pm.delete_endpoint_by_address(addr("198.18.0.3")).unwrap();
    assert_eq!(deleted.len(), 1);
    let left: Vec<String> = ip_endpoints(&ns)
        .iter()
        .map(|v| v["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["2001:db8::1", "198.18.0.4"]);

    pm.flush_endpoints().unwrap();
    assert!(ip_endpoints(&ns).is_empty());
}

#[test]
fn what_iproute2_writes_we_read() {
    let ns = netns("ep-read");
    ip(&ns, &["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    ip(
        &ns,
        &[
            "link", "add", "mpt0", "type", "veth", "peer", "name", "mpt1",
        ],
    );
    for args in [
        &[
            "mptcp",
            "endpoint",
            "add",
            "198.18.0.1",
            "port",
            "6000",
            "id",
            "9",
            "signal",
        ][..],
        &[
            "mptcp",
            "endpoint",
            "add",
            "198.18.0.2",
            "dev",
            "mpt0",
            "subflow",
            "backup",
        ],
        &[
            "mptcp",
            "endpoint",
            "add",
            "2001:db8::7",
            "subflow",
            "fullmesh",
        ],
        &[
            "mptcp",
            "endpoint",
            "add",
            "198.18.0.5",
            "id",
            "200",
            "signal",
        ],
        &[
            "mptcp",
            "limits",
            "set",
            "subflows",
            "7",
            "add_addr_accepted",
            "2",
        ],
    ] {
        ip(&ns, args);
    }
    let (endpoints, limits, one) = ns
        .run(|| -> Result<_, Error> {
            let pm = PathManager::open()?;
            Ok((pm.endpoints()?, pm.limits()?, pm.endpoint(200)?))
        })
        .unwrap()
        .unwrap();
    let theirs: Vec<_> = ip_endpoints(&ns).iter().map(ip_endpoint_fields).collect();
    let ours: Vec<_> = endpoints.iter().map(our_endpoint_fields).collect();
    assert_eq!(ours, theirs);
    assert_eq!(endpoints[0].port, Some(6000));
    assert_eq!(endpoints[1].interface.as_deref(), Some("mpt0"));
    assert_eq!(
        limits,
        Limits {
            subflows: 7,
            add_addr_accepted: 2
        }
    );
    assert_eq!(limits.to_string(), "add_addr_accepted 2 subflows 7");
    assert_eq!(one.to_string(), "198.18.0.5 id 200 signal");

    // Defaults of a fresh namespace, read both ways.
    let fresh = netns("ep-defaults");
    let limits = fresh
        .run(|| PathManager::open()?.limits())
        .unwrap()
        .unwrap();
    assert_eq!(
        limits,
        Limits {
            subflows: 2,
            add_addr_accepted: 0
        }
    );
    assert_eq!(ip_limits(&fresh), (2, 0));
}

#[test]
fn refused_before_sending_or_by_the_kernel_with_clear_errors() {
    let ns = netns("ep-errors");
    ns.run(|| {
        let pm = PathManager::open().unwrap();
        let v4 = addr("198.18.0.9");
        let invalid = [
            pm.add_endpoint(&NewEndpoint::new(v4).id(0)).unwrap_err(),
            pm.set_limits(Limits {
                subflows: 9,
                add_addr_accepted: 0,
            })
            .unwrap_err(),
            pm.add_endpoint(&NewEndpoint::new(v4).flags(EndpointFlags::SUBFLOW).port(80))
                .unwrap_err(),
            pm.add_endpoint(&NewEndpoint::new(v4).flags(EndpointFlags::from_bits_retain(1 << 9)))
                .unwrap_err(),
            pm.delete_endpoint(0).unwrap_err(),
            pm.set_endpoint_flags(1, EndpointFlags::SIGNAL).unwrap_err(),
            "signal,sideways".parse::<EndpointFlags>().unwrap_err(),
        ];
        for e in &invalid {
            assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        }
        assert!(
            invalid[1].to_string().contains("maximum of 8"),
            "{}",
            invalid[1]
        );
        assert!(
            invalid[2].to_string().contains("needs the signal flag"),
            "{}",
            invalid[2]
        );
        // Nothing reached the kernel.
        assert!(pm.endpoints().unwrap().is_empty());
        assert_eq!(
            pm.limits().unwrap(),
            Limits {
                subflows: 2,
                add_addr_accepted: 0
            }
        );

        // The kernel's refusals, typed.
        pm.add_endpoint(&NewEndpoint::new(v4).flags(EndpointFlags::SUBFLOW))
            .unwrap();
        let e = pm
            .add_endpoint(&NewEndpoint::new(v4).flags(EndpointFlags::SUBFLOW))
            .unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e:?}");
        let e = pm.delete_endpoint(77).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        let e = pm.endpoint(77).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        let e = pm
            .delete_endpoint_by_address(addr("198.18.0.10"))
            .unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        // A listening port on an address this namespace does not have.
        let e = pm
            .add_endpoint(
                &NewEndpoint::new(addr("198.18.0.11"))
                    .flags(EndpointFlags::SIGNAL)
                    .port(9),
            )
            .unwrap_err();
        println!("kernel refusal: {e}");
        assert!(matches!(e, Error::Kernel { .. }), "{e:?}");
        // An unknown interface name is found missing before the kernel is asked.
        let e = pm
            .add_endpoint(&NewEndpoint::new(addr("198.18.0.12")).interface("nosuchif0"))
            .unwrap_err();
        assert!(e.to_string().contains("nosuchif0"), "{e}");
    })
    .unwrap();
}
