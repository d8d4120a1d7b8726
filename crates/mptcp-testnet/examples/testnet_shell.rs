//! Builds a test network, prints how to enter it, and removes it when Enter is pressed.
//!
//! ```text
//! sudo cargo run -p mptcp-testnet --example testnet_shell -- --paths 2 --rate 20 --signal
//! ```
//!
//! Options: `--paths N`, `--rate MBIT`, `--router`, `--ipv6`, `--no-ipv4`,
//! `--signal` (server signal endpoints), `--no-endpoints`, `--backup I`, `--strip`.

use std::process::ExitCode;

use mptcp_testnet::{Endpoints, TestNet, TestNetBuilder};

fn parse(args: &[String]) -> Result<(TestNetBuilder, bool), String> {
    let mut builder = TestNet::builder();
    let mut strip = false;
    let mut args = args.iter();
    let number = |value: Option<&String>, flag: &str| -> Result<u32, String> {
        value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    };
    while let Some(arg) = args.next() {
        builder = match arg.as_str() {
            "--paths" => builder.paths(number(args.next(), arg)? as usize),
            "--rate" => builder.rate_mbit(number(args.next(), arg)?),
            "--router" => builder.router(true),
            "--ipv6" => builder.ipv6(true),
            "--no-ipv4" => builder.ipv4(false),
            "--signal" => builder.endpoints(Endpoints::ServerSignal),
            "--no-endpoints" => builder.endpoints(Endpoints::None),
            "--backup" => builder.backup_path(number(args.next(), arg)? as usize),
            "--strip" => {
                strip = true;
                builder
            }
            other => return Err(format!("unknown option {other}")),
        };
    }
    Ok((builder, strip))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (builder, strip) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = builder.build().and_then(|net| {
        net.set_strip_mptcp(strip)?;
        Ok(net)
    });
    let net = match result {
        Ok(net) => net,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{net}");
    println!("press Enter to remove the network");
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("cannot read standard input: {e}");
    }
    ExitCode::SUCCESS
}
