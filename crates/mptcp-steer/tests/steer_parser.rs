//! The tc program's parser on crafted packets, run by the kernel itself
//! (`BPF_PROG_TEST_RUN` through `bpftool prog run`): IPv4 with and without IP
//! options, IPv6, MP_JOIN anywhere in the options, and everything that must
//! pass untouched (other destinations, SYN/ACK, MP_CAPABLE, extension
//! headers, fragments, truncated or malformed options). Checks the verdict,
//! the mark the program leaves in the context, and the counters.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mptcp_steer::bpf::{SteeringStats, TokenSteering};

const TOKEN: u32 = 0xdead_beef;
const MARK: u32 = 0x77;
const VIP4: [u8; 4] = [198, 19, 0, 2];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];
const CLIENT4: [u8; 4] = [198, 18, 1, 1];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PASS: u32 = 0; // TC_ACT_OK
const SHOT: u32 = 2; // TC_ACT_SHOT

fn mp_join(token: u32) -> Vec<u8> {
    let mut o = vec![30, 12, 0x10, 1];
    o.extend_from_slice(&token.to_be_bytes());
    o.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    o
}

/// What a Linux client puts in a join SYN: MSS, SACK-permitted, timestamps,
/// NOP, window scale, MP_JOIN (40 bytes).
fn linux_join_options(token: u32) -> Vec<u8> {
    let mut o = vec![
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 10,
    ];
    o.extend(mp_join(token));
    o
}

fn tcp(flags: u8, options: &[u8]) -> Vec<u8> {
    let mut options = options.to_vec();
    while options.len() % 4 != 0 {
        options.push(0);
    }
    let doff = (20 + options.len()) / 4;
    let mut t = vec![0xaf, 0x77, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0];
    t.push((doff as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
    t.extend(options);
    t
}

fn ipv4(dst: [u8; 4], ip_options: &[u8], frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let ihl = 5 + ip_options.len() / 4;
    let total = (ihl * 4 + l4.len()) as u16;
    p.push(0x40 | ihl as u8);
    p.push(0);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, 6, 0, 0]);
    p.extend_from_slice(&CLIENT4);
    p.extend_from_slice(&dst);
    p.extend_from_slice(ip_options);
    p.extend_from_slice(l4);
    p
}

fn ipv6(dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&CLIENT6);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

struct Pinned(PathBuf);

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bpffs() -> &'static Path {
    let dir = Path::new("/sys/fs/bpf");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    if !mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf"))
    {
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .expect("mount(8)");
        assert!(
            ok.success(),
            "no bpffs on /sys/fs/bpf and mounting one failed"
        );
    }
    dir
}

/// Runs the pinned program on `packet`: (verdict, mark left in the skb).
fn run(pin: &Path, packet: &[u8]) -> (u32, u32) {
    let dir = std::env::temp_dir().join(format!("mptcp-steer-parser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (data, ctx_in, ctx_out) = (dir.join("data"), dir.join("ctx_in"), dir.join("ctx_out"));
    std::fs::write(&data, packet).unwrap();
    // struct __sk_buff, zeroed: the kernel takes len from the data.
    std::fs::write(&ctx_in, [0u8; 192]).unwrap();
    let out = Command::new("bpftool")
        .arg("prog")
        .arg("run")
        .arg("pinned")
        .arg(pin)
        .arg("data_in")
        .arg(&data)
        .arg("ctx_in")
        .arg(&ctx_in)
        .arg("ctx_out")
        .arg(&ctx_out)
        .output()
        .expect("bpftool (apt-get install bpftool)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bpftool prog run on {} bytes: {text}",
        packet.len()
    );
    let verdict = text
        .split("Return value: ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no return value in {text}"));
    let ctx = std::fs::read(&ctx_out).unwrap();
    // struct __sk_buff: len (u32), pkt_type (u32), mark (u32), ...
    let mark = u32::from_ne_bytes(ctx[8..12].try_into().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    (verdict, mark)
}

#[test]
fn parser_verdicts_on_crafted_packets() {
    let mut steer = TokenSteering::load().expect("load the tc program (root needed)");
    steer.add_vip(IpAddr::from(VIP4)).unwrap();
    steer.add_vip(IpAddr::from(VIP6)).unwrap();
    steer.insert(TOKEN, MARK).unwrap();
    let pin = Pinned(bpffs().join(format!("mptcp-steer-parser-{}", std::process::id())));
    steer.pin(&pin.0).unwrap();

    let join = tcp(SYN, &linux_join_options(TOKEN));
    let mut nops_then_join = vec![1u8; 28];
    nops_then_join.extend(mp_join(TOKEN));
    let mut join_after_eol = vec![0u8, 1, 1, 1];
    join_after_eol.extend(mp_join(TOKEN));
    let mut long_join = mp_join(TOKEN);
    long_join[1] = 16;
    long_join.extend_from_slice(&[0; 4]);
    let mut overlong = vec![2, 4, 5, 0xb4];
    overlong.extend(mp_join(TOKEN));
    overlong[5] = 40; // MP_JOIN claims more bytes than the header holds
    let mp_capable = vec![30, 4, 0x01, 0x81];
    let other_vip = [198, 19, 1, 2];
    let mut truncated = ipv4(VIP4, &[], 0, &join);
    truncated.truncate(14 + 20 + 30);
    let ip_options = [0x94, 0x04, 0, 0, 1, 1, 1, 0]; // router alert, NOPs, EOL

    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, u32, u32)> = vec![
        ("v4 join, Linux options", ipv4(VIP4, &[], 0, &join), PASS, MARK),
        ("v4 join behind IP options", ipv4(VIP4, &ip_options, 0, &join), PASS, MARK),
        ("v4 join after 28 NOPs", ipv4(VIP4, &[], 0, &tcp(SYN, &nops_then_join)), PASS, MARK),
        ("v4 join, unknown token", ipv4(VIP4, &[], 0, &tcp(SYN, &linux_join_options(7))), SHOT, 0),
        ("v6 join", ipv6(VIP6, 6, &join), PASS, MARK),
        ("v6 join, unknown token", ipv6(VIP6, 6, &tcp(SYN, &mp_join(7))), SHOT, 0),
        ("v4 join to another address", ipv4(other_vip, &[], 0, &join), PASS, 0),
        ("v4 SYN/ACK with MP_JOIN", ipv4(VIP4, &[], 0, &tcp(SYN | ACK, &mp_join(TOKEN))), PASS, 0),
        ("v4 MP_CAPABLE SYN", ipv4(VIP4, &[], 0, &tcp(SYN, &mp_capable)), PASS, 0),
        ("v4 SYN without options", ipv4(VIP4, &[], 0, &tcp(SYN, &[])), PASS, 0),
        ("v4 MP_JOIN after EOL", ipv4(VIP4, &[], 0, &tcp(SYN, &join_after_eol)), PASS, 0),
        ("v4 MP_JOIN of length 16", ipv4(VIP4, &[], 0, &tcp(SYN, &long_join)), PASS, 0),
        ("v4 option longer than the header", ipv4(VIP4, &[], 0, &tcp(SYN, &overlong)), PASS, 0),
        ("v4 truncated TCP options", truncated, PASS, 0),
        ("v4 non-first fragment", ipv4(VIP4, &[], 0x0010, &join), PASS, 0),
        ("v6 hop-by-hop header", ipv6(VIP6, 0, &join), PASS, 0),
        ("ARP", vec![0xff; 14].into_iter().chain([0x08, 0x06]).collect(), PASS, 0),
    ];
    let mut failures = Vec::new();
    for (what, packet, verdict, mark) in &cases {
        let got = run(&pin.0, packet);
        if got != (*verdict, *mark) {
            failures.push(format!(
                "{what}: got verdict {} mark {:#x}, want {verdict} {mark:#x}",
                got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        steer.stats().unwrap(),
        SteeringStats {
            joins_seen: 6,
            steered: 4,
            dropped_unknown: 2,
            non_join_passed: cases.len() as u64 - 6,
        }
    );
}
