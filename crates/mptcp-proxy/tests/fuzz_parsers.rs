//! A fixed-seed fuzz run of every parser that reads bytes from the network
//! (RFC 8803 Convert, SOCKS5 greeting/credentials/request, HTTP CONNECT):
//! random bytes and mutations of valid messages. Each parser must return,
//! never panic, never claim more bytes than it was given, and never ask for
//! more than its bound. Deterministic (same seed every run) and quick, so CI
//! runs it; the counts printed show the mutations reach the success paths too.

use mptcp_proxy::{convert, http_connect, socks5};
use mptcp_testnet::support::fuzz::{mutate, Rng};

/// A random input of up to 1200 noise bytes, or a mutated seed.
fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    mutate(rng, seeds, 1200)
}

const ROUNDS: usize = 200_000;

#[test]
fn convert_parser_survives_random_and_mutated_bytes() {
    let mut rng = Rng(0x8803_8803_8803_8803);
    let seeds = vec![
        convert::connect_request("198.18.0.1:80".parse().unwrap(), true),
        convert::connect_request("[2001:db8::1]:443".parse().unwrap(), false),
        convert::error_reply(convert::ErrorCode::NOT_AUTHORIZED, 0),
        convert::encode(&convert::Message {
            tlvs: vec![
                convert::Tlv::SupportedTcpExtensions(vec![2, 30]),
                convert::Tlv::Cookie(vec![1, 2, 3]),
                convert::Tlv::ExtendedTcpHeader(vec![0; 20]),
            ],
        })
        .unwrap(),
    ];
    let (mut done, mut incomplete, mut errors) = (0, 0, 0);
    for _ in 0..ROUNDS {
        let b = input(&mut rng, &seeds);
        match convert::parse(&b) {
            Ok(convert::Parsed::Done(msg, n)) => {
                assert!(n <= b.len() && n <= convert::MAX_MESSAGE && n % 4 == 0);
                // What parsed encodes again, within the bound.
                let again = convert::encode(&msg).expect("a parsed message re-encodes");
                assert!(again.len() <= convert::MAX_MESSAGE);
                done += 1;
            }
            Ok(convert::Parsed::Incomplete(n)) => {
                assert!(n > b.len() && n <= convert::MAX_MESSAGE, "{n} for {b:?}");
                incomplete += 1;
            }
            Err(e) => {
                let _ = e.to_tlv();
                errors += 1;
            }
        }
    }
    println!("convert: {done} parsed, {incomplete} incomplete, {errors} refused");
    assert!(done > ROUNDS / 20 && incomplete > 0 && errors > ROUNDS / 20);
}

#[test]
fn socks5_parsers_survive_random_and_mutated_bytes() {
    let mut rng = Rng(0x1928_1929_1928_1929);
    let seeds = vec![
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
    ];
    let mut ok = [0usize; 3];
    for _ in 0..ROUNDS {
        let b = input(&mut rng, &seeds);
        if let Some((m, n)) = socks5::parse_greeting(&b).unwrap_or(None) {
            assert!(n <= b.len() && !m.is_empty() && m.len() <= 255);
            ok[0] += 1;
        }
        if let Some(((u, p), n)) = socks5::parse_credentials(&b).unwrap_or(None) {
            assert!(n <= b.len() && n <= socks5::MAX_MESSAGE && u.len() <= 255 && p.len() <= 255);
            ok[1] += 1;
        }
        match socks5::parse_request(&b) {
            Ok(Some((r, n))) => {
                assert!(n <= b.len() && n <= 7 + 255);
                let _ = r.target.to_string();
                ok[2] += 1;
            }
            Ok(None) => assert!(b.len() < 7 + 255),
            Err(e) => {
                let _ = e.reply_code();
            }
        }
    }
    println!(
        "socks5: greeting {} credentials {} request {} parsed",
        ok[0], ok[1], ok[2]
    );
    assert!(ok.iter().all(|&n| n > 100), "{ok:?}");
}

#[test]
fn http_connect_parser_survives_random_and_mutated_bytes() {
    let mut rng = Rng(0x9110_9110_9110_9110);
    let seeds = vec![
        b"CONNECT 198.18.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"CONNECT [2001:db8::1]:443 HTTP/1.0\r\n\r\nabc".to_vec(),
    ];
    let mut ok = 0;
    for _ in 0..ROUNDS / 4 {
        let b = input(&mut rng, &seeds);
        match http_connect::parse(&b) {
            Ok(Some((host, port, n))) => {
                assert!(
                    n <= b.len() && n <= http_connect::MAX_HEAD && !host.is_empty() && port != 0
                );
                ok += 1;
            }
            Ok(None) => assert!(b.len() < http_connect::MAX_HEAD),
            Err(e) => assert!(e.response().starts_with(b"HTTP/1.1 4")),
        }
    }
    // A long head without its blank line is refused, not buffered forever.
    let long = vec![b'a'; http_connect::MAX_HEAD + 10];
    assert_eq!(
        http_connect::parse(&long),
        Err(http_connect::HttpConnectError::TooLong)
    );
    println!("http connect: {ok} parsed");
    assert!(ok > 100, "{ok}");
}
