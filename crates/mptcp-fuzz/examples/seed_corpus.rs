//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-*`: the
//! valid messages the crates' own tests use (the fixed-seed fuzz tests' seeds, the byte
//! fixtures, kernel replies recorded on Linux 6.x, `packaging/pm.toml`), built here with
//! the crates' encoders where they have one.
//!
//! `cargo run -p mptcp-fuzz --example seed_corpus` (again after a format changes; the
//! files the fuzzer added are left alone). Each seed is replayed by `tests/corpus.rs`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mptcp_fuzz::registry::{mac, record, BACKENDS, NOW_MS, READD, SIGN};
use mptcp_netlink::codec::{
    cmd, diag, AddressAttrs, EndpointFlags, Event, EventKind, NewEndpoint, PmAttr, PmMessage,
    ResetReason,
};
use mptcp_proxy::convert;
use mptcp_steer::registry::{Key, Publisher};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn write(target: &str, seeds: &[Vec<u8>]) {
    assert!(mptcp_fuzz::target(target).is_some(), "no target {target}");
    let dir = root().join(target);
    fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        (mptcp_fuzz::target(target).unwrap().run)(s);
        fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
    println!("{target}: {} seeds", seeds.len());
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The `proxy_protocol` input for two addresses and a status selector.
fn addrs(src: SocketAddr, dst: SocketAddr, status: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for a in [src, dst] {
        match a.ip() {
            std::net::IpAddr::V4(v4) => {
                out.push(0);
                out.extend_from_slice(&v4.octets());
            }
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    out.push(2);
                    out.extend_from_slice(&v4.octets());
                }
                None => {
                    out.push(1);
                    out.extend_from_slice(&v6.octets());
                }
            },
        }
        out.extend_from_slice(&a.port().to_be_bytes());
    }
    out.push(status);
    out
}

/// One netlink attribute: length, type, value, padding to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(4 + value.len()).unwrap().to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

/// A netlink message: header, then `payload`.
fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(16 + payload.len()).unwrap().to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

/// A generic netlink message of family `0x1c`: command, version 1, attributes.
fn genl(command: u8, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let mut payload = vec![command, 1, 0, 0];
    payload.extend_from_slice(attrs);
    nlmsg(0x1c, 2, seq, &payload)
}

/// The kernel replies recorded as hex in mptcp-net's unit tests (`const REAL_*`).
fn recorded_replies() -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mptcp-net/src/info/tests.rs");
    let text = fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("const REAL_") {
        let rest = &text[i + "const ".len()..];
        let name = rest[..rest.find(':').unwrap()].to_string();
        let body = &rest[rest.find('"').unwrap() + 1..];
        let body = &body[..body.find('"').unwrap()];
        let hex: Vec<u8> = body.bytes().filter(u8::is_ascii_hexdigit).collect();
        let bytes = hex
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect();
        out.push((name, bytes));
    }
    assert!(out.len() >= 8, "the REAL_* fixtures moved");
    out
}

fn main() {
    write(
        "proxy_protocol",
        &[
            addrs(sa("192.168.0.1:56324"), sa("192.168.0.11:443"), 0),
            addrs(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:65535"), 2),
            addrs(
                sa("[::ffff:198.18.0.1]:40000"),
                sa("[::ffff:198.18.0.2]:80"),
                3,
            ),
            addrs(sa("198.18.0.1:40000"), sa("[2001:db8::2]:443"), 1),
            addrs(sa("[::ffff:198.18.0.1]:1"), sa("[::1]:2"), 2),
        ],
    );

    write(
        "socks5",
        &[
            vec![5, 2, 0, 2],
            vec![1, 3, b'b', b'o', b'b', 2, b'p', b'w'],
            vec![5, 1, 0, 1, 198, 18, 0, 1, 0, 80],
            [&[5u8, 1, 0, 3, 12][..], b"example.test", &[0, 80]].concat(),
            [
                &[5u8, 1, 0, 4][..],
                &[0x20, 1, 0xd, 0xb8],
                &[0; 12],
                &[1, 0xbb],
            ]
            .concat(),
        ],
    );

    write(
        "http_connect",
        &[
            b"CONNECT 198.18.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"CONNECT [2001:db8::1]:443 HTTP/1.0\r\n\r\nabc".to_vec(),
            b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nUser-Agent: curl/8\r\nProxy-Connection: Keep-Alive\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ],
    );

    write(
        "convert",
        &[
            convert::connect_request(sa("198.18.0.1:80"), true),
            convert::connect_request(sa("[2001:db8::1]:443"), false),
            convert::error_reply(convert::ErrorCode::NOT_AUTHORIZED, 0),
            convert::encode(&convert::Message {
                tlvs: vec![
                    convert::Tlv::SupportedTcpExtensions(vec![2, 30]),
                    convert::Tlv::Cookie(vec![1, 2, 3]),
                    convert::Tlv::ExtendedTcpHeader(vec![0; 20]),
                ],
            })
            .unwrap(),
            convert::encode(&convert::Message {
                tlvs: vec![convert::Tlv::Connect {
                    dest: sa("198.18.0.1:8080"),
                    tcp_options: vec![2, 4, 5, 0xb4],
                }],
            })
            .unwrap(),
        ],
    );

    // Generic netlink: the selector byte, then attributes; framed messages and errors.
    let mut event = Event::new(EventKind::SubClosed);
    event.token = Some(0x1234_5678);
    event.family = Some(10);
    event.local = Some(sa("[2001:db8::1]:40000"));
    event.remote = Some(sa("[2001:db8::2]:5201"));
    event.local_id = Some(1);
    event.remote_id = Some(0);
    event.backup = Some(true);
    event.error = Some(104);
    event.reset_reason = Some(ResetReason::Middlebox);
    event.ifindex = Some(3);
    let mut established = Event::new(EventKind::Established);
    established.token = Some(0x1c2d_3e4f);
    established.family = Some(2);
    established.local = Some(sa("198.18.1.1:40123"));
    established.remote = Some(sa("198.18.0.2:5201"));
    established.server_side = Some(false);
    let ep = NewEndpoint::new("198.18.0.1".parse().unwrap())
        .id(3)
        .port(5202)
        .flags(EndpointFlags::SIGNAL);
    let request = PmMessage::new(
        cmd::SUBFLOW_CREATE,
        vec![
            PmAttr::Token(7),
            PmAttr::Addr(ep.to_attrs(Some(2))),
            PmAttr::AddrRemote(AddressAttrs::from_ip("198.18.0.2".parse().unwrap())),
            PmAttr::Subflows(2),
            PmAttr::RcvAddAddrs(1),
            PmAttr::LocId(4),
        ],
    );
    let limits = PmMessage::new(
        cmd::GET_LIMITS,
        vec![PmAttr::RcvAddAddrs(8), PmAttr::Subflows(8)],
    );
    let with = |selector: u8, bytes: Vec<u8>| [vec![selector], bytes].concat();
    // NLMSG_ERROR -EINVAL with an extended ack message, then NLMSG_DONE.
    let mut nack = (-22i32).to_ne_bytes().to_vec();
    nack.extend_from_slice(&genl(cmd::ADD_ADDR, 7, &[])[..16]);
    nack.extend_from_slice(&nla(1, b"limit greater than maximum (8)\0"));
    let mut dump = genl(cmd::GET_ADDR, 9, &nla(1, &ep.to_attrs(Some(1)).to_bytes()));
    dump.extend(nlmsg(3, 2, 9, &0i32.to_ne_bytes()));
    write(
        "netlink_codec",
        &[
            with(EventKind::SubClosed.number(), event.to_bytes()),
            with(EventKind::Established.number(), established.to_bytes()),
            with(cmd::SUBFLOW_CREATE, request.to_bytes()),
            with(cmd::GET_LIMITS, limits.to_bytes()),
            with(cmd::ADD_ADDR, ep.to_attrs(None).to_bytes()),
            genl(cmd::SUBFLOW_CREATE, 5, &request.to_bytes()),
            genl(cmd::GET_LIMITS, 6, &limits.to_bytes()),
            nlmsg(2, 0x300, 7, &nack),
            nlmsg(2, 0, 8, &[&0i32.to_ne_bytes()[..], &[0; 16]].concat()),
            dump,
        ],
    );

    // sock_diag: an inet_diag_msg with the MPTCP ULP nest, and struct mptcp_info.
    let recorded = recorded_replies();
    let real = |name: &str| {
        recorded
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
            .clone()
    };
    let mut msg = vec![0u8; diag::INET_DIAG_MSG_LEN];
    msg[0] = 2;
    msg[1] = 1;
    msg[4..6].copy_from_slice(&40000u16.to_be_bytes());
    msg[6..8].copy_from_slice(&5201u16.to_be_bytes());
    msg[8..12].copy_from_slice(&[198, 18, 1, 1]);
    msg[24..28].copy_from_slice(&[198, 18, 0, 2]);
    msg[44..48].copy_from_slice(&7u32.to_ne_bytes());
    msg[68..72].copy_from_slice(&1234u32.to_ne_bytes());
    let sub = [
        nla(diag::subflow_attr::TOKEN_LOC, &0xabcdu32.to_ne_bytes()),
        nla(diag::subflow_attr::TOKEN_REM, &0x1234u32.to_ne_bytes()),
        nla(diag::subflow_attr::ID_LOC, &[1]),
        nla(diag::subflow_attr::ID_REM, &[0]),
        nla(diag::subflow_attr::FLAGS, &0x4cu32.to_ne_bytes()),
        nla(diag::subflow_attr::MAP_SEQ, &5u64.to_ne_bytes()),
        nla(diag::subflow_attr::MAP_DATALEN, &1400u16.to_ne_bytes()),
    ]
    .concat();
    let ulp = [
        nla(diag::INET_ULP_INFO_NAME, b"mptcp\0"),
        nla(diag::INET_ULP_INFO_MPTCP | 0x8000, &sub),
    ]
    .concat();
    let mut subflow = msg.clone();
    subflow.extend(nla(diag::INET_DIAG_ULP_INFO | 0x8000, &ulp));
    let mut msk = msg.clone();
    msk[6..8].copy_from_slice(&0u16.to_be_bytes());
    msk.extend(nla(diag::INET_DIAG_INFO, &real("REAL_MPTCP_INFO")));
    let mut v6 = vec![0u8; diag::INET_DIAG_MSG_LEN];
    v6[0] = 10;
    v6[1] = 10;
    v6[8..24].copy_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    write(
        "sock_diag",
        &[subflow, msk, v6, ulp, real("REAL_MPTCP_INFO")],
    );

    // MPTCP_INFO and friends, as recorded; MPTCP_FULL_INFO as the harness splits it.
    let mut info: Vec<Vec<u8>> = recorded
        .iter()
        .filter(|(n, _)| !n.starts_with("REAL_FULL_"))
        .map(|(_, b)| b.clone())
        .collect();
    let (header, sf, tcp) = (
        real("REAL_FULL_HEADER"),
        real("REAL_FULL_SFINFO"),
        real("REAL_FULL_TCPINFO"),
    );
    let mut full = Vec::new();
    full.extend_from_slice(&u16::try_from(header.len()).unwrap().to_ne_bytes());
    full.extend_from_slice(&u16::try_from(sf.len()).unwrap().to_ne_bytes());
    full.extend([header, sf, tcp].concat());
    info.push(full);
    write("mptcp_info", &info);

    // The token registry: what a backend's publisher sends, unsigned with SIGN (the
    // harness signs it), whole with its own MAC, and forged.
    let key = Key::new(mptcp_fuzz::registry::KEY).unwrap();
    let mut seeds = Vec::new();
    for (backend, _) in BACKENDS {
        let mut p = Publisher::new(key.clone(), backend);
        let mut input = Vec::new();
        p.reset();
        p.snapshot([1, 2, 3]);
        for d in p.flush(NOW_MS) {
            input.extend(record(SIGN, &d[..d.len() - 32]));
        }
        p.remove(2);
        p.add(0xdead_beef);
        for d in p.flush(NOW_MS + 1) {
            input.extend(record(SIGN | READD, &d[..d.len() - 32]));
            input.extend(record(0, &d));
        }
        let hb = p.heartbeat(NOW_MS + 2);
        let mut forged = hb.clone();
        let n = forged.len();
        forged[n - 1] ^= 1;
        input.extend(record(0, &forged));
        input.extend(record(0, &hb));
        assert_eq!(mac(&hb[..n - 32])[..], hb[n - 32..]);
        seeds.push(input);
    }
    write("lb_registry", &seeds);

    // Configuration files.
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/pm.toml");
    write(
        "pm_toml",
        &[
            fs::read(packaging).unwrap(),
            b"role = \"server\"\n[[interface]]\nname = \"wwan*\"\nflags = [\"signal\", \"backup\"]\n".to_vec(),
            b"[[interface]]\nname = \"eth*\"\nflags = [\"signal\", \"fullmesh\"]\n".to_vec(),
            b"role = \"client\"\nipv6 = false\ninclude = [\"eth*\", \"wl*\"]\nexclude = [\"docker*\"]\nresync_interval = 10\n[filters]\nloopback = true\n".to_vec(),
        ],
    );
    write(
        "proxy_toml",
        &[
            b"metrics = \"127.0.0.1:9101\"\nthreads = 2\ndrain_timeout = \"5s\"\n\n[[route]]\nname = \"web\"\nlisten = \"[::]:8443\"\nto = \"127.0.0.1:443\"\nto_tcp = true\nproxy_protocol = \"v2\"\nmax_conns = 100\nconnect_timeout = 3\nidle_timeout = \"off\"\n\n[[route]]\nlisten = \"0.0.0.0:8080\"\nto = \"backend.test:80\"\nlisten_tcp = true\ncopy_buffer = 65536\nforce_copy = true\nbacklog = 128\n".to_vec(),
            b"[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"[2001:db8::1]:443\"\nidle_timeout = 0\n".to_vec(),
            b"[[route]]\nlisten = \"127.0.0.1:1\"\nto = \"nowhere\"\n".to_vec(),
            b"threads = 1\n".to_vec(),
        ],
    );
}
