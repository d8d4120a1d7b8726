//! The multipath gateway's command line: `mptcp proxy --convert / --socks5 / ...`
//! wired to the library, end to end once, and its bad input. What the gateway
//! does (HTTP CONNECT, REDIRECT and TPROXY intakes, the Convert message in a TFO
//! SYN, RFC 8803 refusals, IPv6, aggregation and a path cut) is proved in-process
//! in `crates/mptcp-proxy/tests/gateway_net.rs`.
//!
//! The end-to-end run: on a 2-path mptcp-testnet network with a router, `curl
//! --socks5` in the client namespace -> `mptcp proxy --socks5 --converter` ->
//! two paths (MPTCP) -> `mptcp proxy --convert --metrics` in the server namespace
//! -> Python's http.server in the router namespace (198.19.0.254): the file
//! arrives byte-exact; both processes print their `gateway_listening` and
//! `gateway_connection` JSON lines; the converter's /metrics counts the
//! connection; SIGTERM stops the gateway with status 0 and a `stopped` line.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use mptcp_testnet::support::{curl, http_server, pattern, JsonChild, TestDir};
use mptcp_testnet::TestNet;
use serde_json::Value;

const WEB_PORT: u16 = 8000;

/// A running `mptcp --netns NS --json proxy ARGS` and its JSON lines. Killed on drop.
struct Gw(JsonChild);

impl Gw {
    /// Starts the binary in `ns` and waits for its `gateway_listening` line.
    fn start(ns: &str, args: &[&str]) -> (Gw, Value) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mptcp"));
        cmd.args(["--netns", ns, "--json", "proxy"]).args(args);
        cmd.env_remove("MPTCP_NET").env("MPTCP_LOG", "info");
        let mut child = JsonChild::spawn(&mut cmd);
        let (_, line) = child.wait_for("gateway_listening", 0, Duration::from_secs(10), |v| {
            v["type"] == "gateway_listening"
        });
        (Gw(child), line)
    }

    /// Waits (10 s at most) for a `gateway_connection` line.
    fn connection(&mut self) -> Value {
        let (_, line) = self
            .0
            .wait_for("gateway_connection", 0, Duration::from_secs(10), |v| {
                v["type"] == "gateway_connection"
            });
        line
    }
}

#[test]
fn gateway_socks5_through_the_converter_end_to_end() {
    let net = TestNet::builder()
        .paths(2)
        .router(true)
        .build()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs a 2-path test network with a router (root, iproute2, MPTCP): {e}"
            )
        });
    let dir = TestDir::new("gw-cli");
    std::fs::create_dir_all(&*dir).unwrap();
    let data = pattern(1 << 20);
    std::fs::write(dir.join("blob"), &data).unwrap();
    let router = net.router().unwrap();
    let _web = http_server(router, &dir, Ipv4Addr::UNSPECIFIED.into(), WEB_PORT);

    let (mut converter, listening) = Gw::start(
        net.server().name(),
        &[
            "--convert",
            "0.0.0.0:5124",
            "--allow",
            "198.18.0.0/16",
            "--allow-private-destinations",
            "--metrics",
            "127.0.0.1:19100",
        ],
    );
    assert_eq!(listening["mode"], "convert", "{listening}");
    assert_eq!(listening["listen"], "0.0.0.0:5124", "{listening}");
    let conv_addr = SocketAddr::new(net.server().addr(0).unwrap(), 5124).to_string();
    let (mut gateway, listening) = Gw::start(
        net.client().name(),
        &["--socks5", "127.0.0.1:0", "--converter", &conv_addr],
    );
    assert_eq!(listening["mode"], "socks5", "{listening}");
    assert_eq!(listening["converter"], conv_addr.as_str(), "{listening}");
    let socks: SocketAddr = listening["listen"].as_str().unwrap().parse().unwrap();
    assert_ne!(socks.port(), 0, "{listening}");

    let got = dir.join("got");
    let web = format!("198.19.0.254:{WEB_PORT}");
    let url = format!("http://{web}/blob");
    let out = curl(net.client(), &["--socks5", &socks.to_string()], &url, &got);
    assert!(
        out.status.success(),
        "curl --socks5: {}\nconverter: {}\ngateway: {}",
        String::from_utf8_lossy(&out.stderr),
        converter.0.stderr(),
        gateway.0.stderr()
    );
    assert!(
        std::fs::read(&got).unwrap() == data,
        "SOCKS5: the file differs"
    );

    let g = gateway.connection();
    assert_eq!(g["mode"], "socks5", "{g}");
    assert_eq!(g["end"], "closed", "{g}");
    assert_eq!(g["destination"], web, "{g}");
    assert_eq!(g["upstream"], conv_addr, "{g}");
    assert_eq!(g["upstream_mptcp"], "active", "{g}");
    assert_eq!(g["fastopen"], false, "{g}");
    assert!(g["time"].is_string(), "{g}");
    let c = converter.connection();
    assert_eq!(c["mode"], "convert", "{c}");
    assert_eq!(c["end"], "closed", "{c}");
    assert_eq!(c["destination"], web, "{c}");
    assert_eq!(c["client_mptcp"], "active", "{c}");
    assert!(
        c["bytes_to_client"].as_u64().unwrap() > data.len() as u64,
        "{c}"
    );

    // --metrics serves the converter's counters.
    let metrics = dir.join("metrics");
    let out = curl(
        net.server(),
        &[],
        "http://127.0.0.1:19100/metrics",
        &metrics,
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let line =
        "mptcp_proxy_connections_total{mptcp=\"active\",route=\"convert\",side=\"client\"} 1";
    assert!(text.contains(line), "no {line:?} in:\n{text}");

    // SIGTERM: a `stopped` line, status 0.
    let pid = rustix::process::Pid::from_raw(gateway.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = gateway.0.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", gateway.0.stderr());
    let lines = gateway.0.lines();
    let (_, last) = lines.last().unwrap();
    assert_eq!(last["type"], "stopped", "{last}");
    assert_eq!(last["reset_at_deadline"], 0, "{last}");
}

/// Bad gateway options: one line on stderr naming the problem, status 2.
#[test]
fn gateway_bad_input_is_one_line_and_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--convert", "127.0.0.1:0"], "--allow"),
        (
            &["--convert", "127.0.0.1:0", "--allow", "nope"],
            "not a CIDR",
        ),
        (
            &["--socks5", "127.0.0.1:0", "--socks5-auth", "nocolon"],
            "USER:PASSWORD",
        ),
        (
            &["--socks5", "127.0.0.1:0", "--converter", "noport"],
            "HOST:PORT",
        ),
        (
            &["--socks5", "127.0.0.1:0", "--allow", "10.0.0.0/8"],
            "--convert",
        ),
        (&["--socks5", "127.0.0.1:0", "--tproxy"], "--transparent"),
        (
            &[
                "--convert",
                "127.0.0.1:0",
                "--allow",
                "10.0.0.0/8",
                "--converter",
                "a:1",
            ],
            "--converter is for",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--to",
                "a:1",
                "--socks5",
                "127.0.0.1:0",
            ],
            "--socks5",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .arg("proxy")
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
