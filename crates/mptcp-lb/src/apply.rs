//! Applying a [`Ruleset`](crate::rules::Ruleset): `nft -f -` (one netlink transaction:
//! all of the table or none of it) and `ip` for rules and routes, each
//! change recorded so it can be undone in reverse order.
//!
//! Why the tools and not a crate: `nft`'s own language is nftables' documented,
//! stable interface, and one `nft -f` is one atomic transaction; the `nftables` crate
//! wraps the same program through its JSON schema, where our maps with concatenated
//! keys, `rt ip nexthop` and `jhash` would be several hundred lines of constructors
//! for the same text. Rules and routes go through iproute2 because the daemon changes
//! a handful of them per reload; `rtnetlink`'s builders would save one process start
//! per batch and add an async runtime to a crate that has no other use for one.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// A tool failed or is missing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` or `ip` is not installed.
    #[error("`{tool}` is missing: install {package}")]
    Missing {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// The tool refused; its message.
    #[error("{what}: {message}")]
    Refused {
        /// What was being applied.
        what: String,
        /// What the tool said.
        message: String,
    },
}

fn tool(name: &'static str) -> Result<Command, Error> {
    let package = if name == "nft" {
        "nftables"
    } else {
        "iproute2"
    };
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .map(Command::new)
        .ok_or(Error::Missing {
            tool: name,
            package,
        })
}

fn run(name: &'static str, args: &[&str], stdin: &str, what: &str) -> Result<String, Error> {
    let mut cmd = tool(name)?;
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let refused = |message: String| Error::Refused {
        what: what.to_string(),
        message,
    };
    let mut child = cmd.spawn().map_err(|e| refused(e.to_string()))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(|e| refused(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| refused(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        Err(refused(
            msg.lines()
                .filter(|l| !l.trim().is_empty())
                .take(3)
                .collect::<Vec<_>>()
                .join(" / "),
        ))
    }
}

/// Applies an nftables script in one transaction.
///
/// # Errors
/// [`Error::Refused`] with nft's message; nothing of the script is applied then.
pub fn nft(script: &str) -> Result<(), Error> {
    run("nft", &["-f", "-"], script, "nftables rules").map(|_| ())
}

/// Removes this crate's table, if there.
///
/// # Errors
/// When `nft` is missing or fails for another reason than the table being absent.
pub fn remove_table() -> Result<(), Error> {
    nft(&format!(
        "add table inet {t}\ndelete table inet {t}\n",
        t = crate::rules::TABLE
    ))
}

/// Runs `ip` with a command line such as [`RouteRule::line`](crate::rules::RouteRule::line)
/// gives (words separated by spaces).
///
/// # Errors
/// [`Error::Refused`] with ip's message.
pub fn ip(line: &str, what: &str) -> Result<(), Error> {
    let args: Vec<&str> = line.split_whitespace().collect();
    run("ip", &args, "", what).map(|_| ())
}

/// Whether the main table has a route for exactly `vip` (an operator's ECMP route).
///
/// # Errors
/// When `ip` fails.
pub fn has_route(vip: IpAddr) -> Result<bool, Error> {
    let (family, prefix) = if vip.is_ipv6() {
        ("-6", 128)
    } else {
        ("-4", 32)
    };
    let out = run(
        "ip",
        &[
            family,
            "route",
            "show",
            "exact",
            &format!("{vip}/{prefix}"),
            "table",
            "main",
        ],
        "",
        "reading routes",
    )?;
    Ok(!out.trim().is_empty())
}

/// Whether `vip` is held by this host (an address on one of its interfaces).
///
/// # Errors
/// When `ip` fails.
pub fn holds_address(addr: IpAddr) -> Result<bool, Error> {
    let out = run("ip", &["-o", "addr", "show"], "", "reading addresses")?;
    let needle = format!(" {addr}/");
    Ok(out.lines().any(|l| l.contains(&needle)))
}

/// The interface the route to `addr` leaves by.
///
/// # Errors
/// When `ip` fails (no route).
pub fn route_dev(addr: IpAddr) -> Result<String, Error> {
    let out = run(
        "ip",
        &["-o", "route", "get", &addr.to_string()],
        "",
        &format!("finding the route to backend {addr}"),
    )?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            if let Some(d) = words.next() {
                return Ok(d.to_string());
            }
        }
    }
    Err(Error::Refused {
        what: format!("finding the route to backend {addr}"),
        message: format!("no device in {out:?}"),
    })
}

/// Every interface name of this host (`ip -o link show`).
///
/// # Errors
/// When `ip` fails.
pub fn interfaces() -> Result<Vec<String>, Error> {
    let out = run("ip", &["-o", "link", "show"], "", "listing interfaces")?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}
