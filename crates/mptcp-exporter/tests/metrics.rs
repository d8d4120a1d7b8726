//! The exporter's metrics on a live test network, checked by independent tools:
//! `promtool check metrics` (Debian package `prometheus`), Python's
//! `prometheus_client` parser (PyPI), `nstat` and `ip mptcp` (iproute2). The
//! collector is used directly; `mptcp exporter`'s HTTP side is tested with the CLI.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mptcp_exporter::Collector;
use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_testnet::support::ip;
use mptcp_testnet::TestNet;
use serde_json::Value;

/// A two-path test network with client subflow endpoints.
fn testnet() -> TestNet {
    TestNet::builder()
        .paths(2)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a 2-path test network (root, iproute2): {e}"))
}

/// `promtool check metrics` accepts `text` (no parse error, no lint problem).
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool (install the Debian package `prometheus`): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample as Python's parser read it.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// The families Python's `prometheus_client` parser finds in `text`: name -> (type,
/// help, samples).
fn python_parse(text: &str) -> HashMap<String, (String, String, Vec<Sample>)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parse_metrics.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    families
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s[0].as_str().unwrap().to_string(),
                    labels: serde_json::from_value(s[1].clone()).unwrap(),
                    value: s[2].as_f64().unwrap(),
                })
                .collect();
            (
                f["name"].as_str().unwrap().to_string(),
                (
                    f["type"].as_str().unwrap().to_string(),
                    f["help"].as_str().unwrap().to_string(),
                    samples,
                ),
            )
        })
        .collect()
}

/// `nstat -azs` in `ns`: every counter, absolute, history untouched.
fn nstat(ns: &str) -> HashMap<String, u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nstat", "-azs"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run nstat (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "nstat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// `n` connections from client to server on ports `5300 + i`, data exchanged both ways,
/// each waited for until it has `subflows` subflows (at most 5 s).
fn connections(net: &TestNet, n: u16, subflows: usize) -> Vec<(TcpListener, TcpStream, TcpStream)> {
    (0..n)
        .map(|i| {
            let port = 5300 + i;
            let listener = net
                .server()
                .run(move || ListenConfig::new().listen(("0.0.0.0", port)))
                .unwrap()
                .expect("listen");
            let to = SocketAddr::new(net.server().addr(0).unwrap(), port);
            let mut client = net
                .client()
                .run(move || Dialer::new().dial(to))
                .unwrap()
                .expect("dial");
            let (mut accepted, _) = listener.accept().expect("accept");
            client.write_all(b"ping").unwrap();
            accepted.read_exact(&mut [0; 4]).unwrap();
            accepted.write_all(b"pong").unwrap();
            client.read_exact(&mut [0; 4]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while client.subflows().unwrap().len() < subflows {
                assert!(
                    Instant::now() < deadline,
                    "no {subflows} subflows within 5 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            (listener, client, accepted)
        })
        .collect()
}

fn samples<'a>(
    families: &'a HashMap<String, (String, String, Vec<Sample>)>,
    family: &str,
) -> &'a [Sample] {
    &families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}: {:?}", families.keys()))
        .2
}

fn value(
    families: &HashMap<String, (String, String, Vec<Sample>)>,
    sample: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let family = ["_count", "_sum", "_bucket", "_total"]
        .iter()
        .find_map(|suffix| sample.strip_suffix(suffix))
        .filter(|f| families.contains_key(*f))
        .unwrap_or(sample);
    samples(families, family)
        .iter()
        .find(|s| {
            s.name == sample
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {sample}{labels:?}"))
        .value
}

#[test]
fn metrics_agree_with_nstat_and_ip_mptcp() {
    let net = testnet();
    let client = net.client().name();
    let _conns = connections(&net, 3, 2);
    // One collector made inside the namespace (as `mptcp --netns NS exporter` does):
    // its workers inherit it, and its series carry no netns label.
    let collector = net
        .client()
        .run(|| Collector::new(&[]).expect("collector"))
        .unwrap();

    // Settle: the joins' last ACKs may still be counting.
    std::thread::sleep(Duration::from_millis(200));
    let before = nstat(client);
    let text = collector.scrape().expect("scrape");
    let after = nstat(client);

    promtool_accepts(&text);
    let families = python_parse(&text);
    for (name, (_, _, samples)) in &families {
        for s in samples {
            assert!(
                !s.labels.contains_key("netns"),
                "one namespace, no netns label: {name}"
            );
        }
    }

    // Every MPTcpExt counter nstat shows, by the kernel name in the help text, with
    // nstat's value where it did not move during the scrape.
    let mut exported = HashMap::new();
    for (name, (kind, help, samples)) in &families {
        if let Some(kernel) = help
            .strip_suffix(").")
            .and_then(|h| h.rsplit_once("(MPTcpExt "))
        {
            let expected = if kernel.1 == "MPCurrEstab" {
                "gauge"
            } else {
                "counter"
            };
            assert_eq!(kind, expected, "{name}");
            assert_eq!(samples.len(), 1, "{name}");
            exported.insert(kernel.1.to_string(), samples[0].value);
        }
    }
    let mut compared = 0;
    for (name, v) in before.iter().filter(|(n, _)| n.starts_with("MPTcpExt")) {
        let kernel = &name["MPTcpExt".len()..];
        let got = exported
            .get(kernel)
            .unwrap_or_else(|| panic!("nstat shows {name}, the exporter does not"));
        if after.get(name) == Some(v) {
            assert_eq!(*got, *v as f64, "{name}");
            compared += 1;
        }
    }
    assert!(compared >= 60, "only {compared} counters held still");
    assert_eq!(
        exported.len(),
        before.keys().filter(|n| n.starts_with("MPTcpExt")).count()
    );
    assert!(
        exported["MPJoinSynTx"] >= 3.0,
        "three joins were sent: {}",
        exported["MPJoinSynTx"]
    );

    // The live connections: three, established, none fell back, two subflows each.
    assert_eq!(
        value(
            &families,
            "mptcp_connections",
            &[("state", "established"), ("fallback", "false")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &families,
            "mptcp_connections",
            &[("state", "established"), ("fallback", "true")]
        ),
        0.0
    );
    assert_eq!(
        value(&families, "mptcp_connection_subflows_count", &[]),
        3.0
    );
    assert_eq!(value(&families, "mptcp_connection_subflows_sum", &[]), 6.0);
    assert_eq!(
        value(
            &families,
            "mptcp_connection_subflows_bucket",
            &[("le", "1")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &families,
            "mptcp_connection_subflows_bucket",
            &[("le", "2")]
        ),
        3.0
    );
    assert!(value(&families, "mptcp_connections_sent_bytes", &[]) >= 12.0);
    assert!(value(&families, "mptcp_connections_received_bytes", &[]) >= 12.0);
    assert_eq!(value(&families, "mptcp_listeners", &[]), 0.0);

    // The endpoints and limits, as `ip mptcp` shows them.
    let shown = ip(client, &["mptcp", "endpoint", "show"]);
    let endpoints = samples(&families, "mptcp_endpoint");
    assert_eq!(endpoints.len(), shown.lines().count(), "{shown}");
    assert_eq!(
        value(&families, "mptcp_endpoints", &[]),
        endpoints.len() as f64
    );
    assert!(!endpoints.is_empty());
    for line in shown.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = words[words.iter().position(|w| *w == "id").unwrap() + 1];
        let e = endpoints
            .iter()
            .find(|s| s.labels["id"] == id)
            .unwrap_or_else(|| panic!("endpoint {line:?} not exported"));
        assert_eq!(e.labels["address"], words[0], "{line}");
        for flag in ["signal", "subflow", "backup", "fullmesh"] {
            let on = words.contains(&flag).to_string();
            assert_eq!(e.labels[flag], on, "{flag} of {line}");
        }
        assert_eq!(e.value, 1.0);
    }
    let limits = ip(client, &["mptcp", "limits", "show"]);
    let limit = |name: &str| -> f64 {
        let words: Vec<&str> = limits.split_whitespace().collect();
        words[words.iter().position(|w| *w == name).unwrap() + 1]
            .parse()
            .unwrap()
    };
    assert_eq!(
        value(&families, "mptcp_limit_subflows", &[]),
        limit("subflows")
    );
    assert_eq!(
        value(&families, "mptcp_limit_add_addr_accepted", &[]),
        limit("add_addr_accepted")
    );
    assert_eq!(
        value(&families, "mptcp_sysctl_info", &[("enabled", "1")]),
        1.0
    );
    for part in ["counters", "connections", "endpoints", "limits", "sysctls"] {
        assert_eq!(
            value(&families, "mptcp_collector_success", &[("collector", part)]),
            1.0,
            "{part}"
        );
    }
}

#[test]
fn several_namespaces_carry_a_netns_label() {
    let net = testnet();
    let (client, server) = (net.client().name(), net.server().name());
    let _conns = connections(&net, 2, 2);
    let collector = Collector::new(&[client.to_string(), server.to_string()]).expect("collector");
    let text = collector.scrape().expect("scrape");
    promtool_accepts(&text);
    let families = python_parse(&text);
    for (name, (_, _, samples)) in &families {
        for s in samples {
            let ns = s
                .labels
                .get("netns")
                .unwrap_or_else(|| panic!("{name} without netns"));
            assert!(ns == client || ns == server, "{name}: {ns}");
        }
    }
    for ns in [client, server] {
        assert_eq!(
            value(
                &families,
                "mptcp_connections",
                &[
                    ("netns", ns),
                    ("state", "established"),
                    ("fallback", "false")
                ]
            ),
            2.0,
            "{ns}"
        );
        assert_eq!(
            value(&families, "mptcp_connection_subflows_sum", &[("netns", ns)]),
            4.0,
            "{ns}"
        );
    }
    assert_eq!(
        value(&families, "mptcp_listeners", &[("netns", server)]),
        2.0
    );
    assert_eq!(
        value(&families, "mptcp_listeners", &[("netns", client)]),
        0.0
    );
    // The client's endpoints are the client's: the server has none of them.
    let client_eps = samples(&families, "mptcp_endpoint")
        .iter()
        .filter(|s| s.labels["netns"] == client)
        .count();
    assert_eq!(
        client_eps,
        ip(client, &["mptcp", "endpoint", "show"]).lines().count()
    );
    let c = value(
        &families,
        "mptcp_mib_mp_join_syn_tx_total",
        &[("netns", client)],
    );
    let s = value(
        &families,
        "mptcp_mib_mp_join_syn_tx_total",
        &[("netns", server)],
    );
    assert!(
        c >= 2.0 && s == 0.0,
        "joins are sent by the client only: {c} {s}"
    );
}

/// The `mptcp_...` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mptcp_") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_grafana_dashboard_queries_only_served_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/grafana-mptcp.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("a target's expr").to_string());
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        exprs.push(v["query"].as_str().expect("a variable's query").to_string());
    }
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "fallback",
        "Join failures",
        "Subflows per connection",
        "Endpoint changes",
        "behind a load balancer",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel on {wanted}: {titles:?}"
        );
    }

    // What a live exporter serves, with a connection and endpoints in place.
    let net = testnet();
    let _conns = connections(&net, 1, 2);
    let collector = net
        .client()
        .run(|| Collector::new(&[]).expect("collector"))
        .unwrap();
    let families = python_parse(&collector.scrape().expect("scrape"));
    let served: Vec<String> = families
        .iter()
        .flat_map(|(name, (_, _, samples))| {
            std::iter::once(name.clone()).chain(samples.iter().map(|s| s.name.clone()))
        })
        .collect();
    let mut queried = 0;
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                served.contains(&name),
                "the dashboard queries {name}, not served: {expr}"
            );
            queried += 1;
        }
    }
    assert!(
        queried >= 20,
        "only {queried} metric names in the dashboard"
    );
}
