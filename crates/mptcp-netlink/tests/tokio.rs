//! The async path manager and event stream (feature `tokio`), in a fresh namespace: the
//! runtime runs on a thread inside it.
#![cfg(feature = "tokio")]

mod common;

use std::future::poll_fn;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mptcp_net::{Dialer, ListenConfig};
use mptcp_netlink::{
    AsyncPathManager, EndpointFlags, Error, Event, EventKind, EventStream, Limits, NewEndpoint,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn async_path_manager_matches_iproute2() {
    let ns = common::netns("tokio-pm");
    let endpoints = ns
        .run(|| {
            runtime().block_on(async {
                let pm = AsyncPathManager::open().await?;
                let fut = pm.limits();
                assert_send(&fut);
                assert_eq!(
                    fut.await?,
                    Limits {
                        subflows: 2,
                        add_addr_accepted: 0
                    }
                );
                pm.set_limits(Limits {
                    subflows: 3,
                    add_addr_accepted: 1,
                })
                .await?;
                let ep = pm
                    .add_endpoint(
                        &NewEndpoint::new("198.18.0.1".parse().unwrap())
                            .flags(EndpointFlags::SUBFLOW | EndpointFlags::BACKUP)
                            .interface("lo"),
                    )
                    .await?;
                assert_eq!(pm.endpoint(ep.id).await?, ep);
                pm.add_endpoint(&NewEndpoint::new("2001:db8::5".parse().unwrap()).id(42))
                    .await?;
                let e = pm
                    .add_endpoint(&NewEndpoint::new("2001:db8::5".parse().unwrap()))
                    .await
                    .unwrap_err();
                assert!(matches!(e, Error::Exists { .. }), "{e:?}");
                let e = pm.delete_endpoint(0).await.unwrap_err();
                assert!(matches!(e, Error::Invalid(_)), "{e:?}");
                pm.endpoints().await
            })
        })
        .unwrap()
        .expect("async path manager");
    assert_eq!(common::ip_limits(&ns), (3, 1));
    let theirs: Vec<_> = common::ip_endpoints(&ns)
        .iter()
        .map(common::ip_endpoint_fields)
        .collect();
    let ours: Vec<_> = endpoints.iter().map(common::our_endpoint_fields).collect();
    assert_eq!(ours, theirs);
    assert_eq!(endpoints[0].interface.as_deref(), Some("lo"));
}

/// The next event, within 5 s.
async fn next_event(events: &mut EventStream, seen: &[Event]) -> Result<Event, Error> {
    tokio::time::timeout(
        Duration::from_secs(5),
        poll_fn(|cx| Pin::new(&mut *events).poll_next(cx)),
    )
    .await
    .unwrap_or_else(|_| panic!("no event within 5 s; so far {seen:#?}"))
    .expect("the stream does not end")
}

fn count(seen: &[Event], kind: EventKind) -> usize {
    seen.iter().filter(|e| e.kind == kind).count()
}

#[test]
fn event_stream_yields_a_connection_lifecycle() {
    let ns = common::netns("tokio-events");
    let seen = ns
        .run(|| {
            runtime().block_on(async {
                let mut events = EventStream::subscribe().await?;
                let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
                let mut client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
                let (mut server, _) = listener.accept().unwrap();
                // Data both ways makes both ends fully established.
                client.write_all(b"ping").unwrap();
                server.read_exact(&mut [0; 4]).unwrap();
                server.write_all(b"pong").unwrap();
                client.read_exact(&mut [0; 4]).unwrap();
                let mut seen: Vec<Event> = Vec::new();
                // Both ends established, then both closed.
                while count(&seen, EventKind::Established) < 2 {
                    let e = next_event(&mut events, &seen).await?;
                    seen.push(e);
                }
                drop(client);
                drop(server);
                while count(&seen, EventKind::Closed) < 2 {
                    let e = next_event(&mut events, &seen).await?;
                    seen.push(e);
                }
                Ok::<_, Error>(seen)
            })
        })
        .unwrap()
        .expect("event stream");
    for e in &seen {
        println!("{e}");
    }
    let kinds: Vec<EventKind> = seen.iter().map(|e| e.kind).collect();
    assert_eq!(kinds[0], EventKind::ListenerCreated, "{kinds:?}");
    assert_eq!(count(&seen, EventKind::Created), 2, "{kinds:?}");
    let first_closed = kinds.iter().position(|k| *k == EventKind::Closed).unwrap();
    let last_established = kinds
        .iter()
        .rposition(|k| *k == EventKind::Established)
        .unwrap();
    assert!(last_established < first_closed, "{kinds:?}");
    // One connection seen from both ends: two tokens, one of them server side.
    let created: Vec<&Event> = seen
        .iter()
        .filter(|e| e.kind == EventKind::Created)
        .collect();
    assert_ne!(created[0].token, created[1].token);
    assert_eq!(
        created
            .iter()
            .filter(|e| e.server_side == Some(true))
            .count(),
        1
    );
    assert_eq!(created[0].local, created[1].remote);
}
