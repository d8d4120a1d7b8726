//! Outcomes: failures classified by what the network and the daemons were doing,
//! growth of memory and descriptors, endpoints left, the exporter against the
//! clients, the converter's dials; a table (unless `--json`), then the JSON line, on stdout.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mptcp_testnet::soak::Action;
use serde_json::{json, Map, Value};

use crate::sink::Sinks;
use crate::work::{Outsider, Route, Stats};
use crate::{net, Args, Samples, Timeline};

pub struct Context<'a> {
    pub args: &'a Args,
    pub start: Instant,
    pub run_end: Instant,
    pub deadline: Instant,
    /// The daemons idle after the warm-up, and idle after the run (same pids: an
    /// instance restarted in between has no growth).
    pub quiet: Option<&'a crate::Quiet>,
    pub idle_after: BTreeMap<String, (u32, crate::daemons::Sample)>,
    /// Host -> MPTCP counters that moved during the run.
    pub counters_moved: BTreeMap<String, BTreeMap<String, u64>>,
    pub timeline: &'a Timeline,
    pub stats: &'a Stats,
    pub sinks: &'a Sinks,
    pub samples: &'a Samples,
    pub idle_fds_before: BTreeMap<String, u64>,
    pub idle_fds_after: BTreeMap<String, u64>,
    pub scrape_before: BTreeMap<String, f64>,
    pub scrape_after: BTreeMap<String, f64>,
    pub endpoints_left: Vec<String>,
    /// The kernel's own (`implicit`) endpoints left: listed, not a violation.
    pub implicit_left: Vec<String>,
    pub pm_types: (String, String),
    pub dials: Vec<String>,
    pub trap: u64,
    pub outsider: &'a Outsider,
}

/// A connection that failed within this long after every path came back still
/// counts as failed by the blackout (its retransmission timer backed off meanwhile);
/// one that failed later lived through the blackout and failed with its paths back
/// (`failed_after_blackout_paths_back`, counted apart).
const BLACKOUT_GRACE: Duration = Duration::from_secs(2);

fn overlaps(a: (Instant, Instant), b: &[(Instant, Instant)]) -> bool {
    b.iter().any(|&(s, e)| a.0 <= e && s <= a.1)
}

/// Whether `t` falls in one of the intervals.
fn during(t: Instant, b: &[(Instant, Instant)]) -> bool {
    b.iter().any(|&(s, e)| s <= t && t <= e)
}

fn metric(m: &BTreeMap<String, f64>, name: &str, netns: &str) -> f64 {
    m.get(&format!("{name}{{netns=\"{netns}\"}}"))
        .copied()
        .unwrap_or(0.0)
}

fn sum_metric(m: &BTreeMap<String, f64>, prefix: &str, must: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && must.iter().all(|s| k.contains(s)))
        .map(|(_, v)| v)
        .sum()
}

pub fn report(c: &Context) -> bool {
    let ops = c.stats.ops.lock().expect("ops");
    let blackouts = c.timeline.intervals(
        |a| matches!(a, Action::BlackoutStart),
        |a| matches!(a, Action::BlackoutEnd),
        BLACKOUT_GRACE,
        c.run_end,
    );
    let proxy_down = c.timeline.intervals(
        |a| matches!(a, Action::KillProxy),
        |a| matches!(a, Action::RestartProxy),
        Duration::ZERO,
        c.run_end,
    );
    // A path that new connections may be using goes: cut, its address removed.
    let path_losses: Vec<Instant> = c
        .timeline
        .events
        .iter()
        .filter(|(_, a)| matches!(a, Action::PathDown(_) | Action::AddrRemove(_)))
        .map(|(at, _)| *at)
        .collect();
    // The path managers' mode when an op started: `--userspace` or in-kernel.
    let userspace_at = |t: Instant| {
        c.timeline
            .events
            .iter()
            .rfind(|(at, a)| *at <= t && matches!(a, Action::PmMode(_)))
            .is_some_and(|(_, a)| matches!(a, Action::PmMode(true)))
    };
    let (mut failed_up_userspace, mut failed_after_blackout) = (0u64, 0u64);
    let daemon_records = client_daemon_records(&c.args.dir);
    let dials_failed = dial_failures(&daemon_records);
    let one_path = fell_back_to_tcp(&daemon_records);
    let mut failed_fell_back = 0u64;
    let (redialed, redialed_mptcp) = redials(&daemon_records);
    let converter_retried = converter_retries(&daemon_records);
    let duplicates_dropped = convert_duplicates(&c.args.dir);
    let (mut sent, mut verified, mut corrupt) = (0u64, 0u64, 0u64);
    let (mut failed_up, mut failed_down, mut failed_proxy) = (0u64, 0u64, 0u64);
    let mut failed_dial = 0u64;
    let (mut ok_ops, mut longest_stall, mut largest) = (0u64, Duration::ZERO, 0u64);
    // The longest a client's write blocked in a completed transfer (the relays'
    // buffers full, bytes still reaching the sink: not a stall).
    let mut longest_write_block = Duration::ZERO;
    // The completed operations' stalls and blocked writes, by route (ms); how many
    // operations each route completed is their count.
    let mut stalls_by_route: BTreeMap<&str, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    let ops_on = |by: &BTreeMap<&str, (Vec<u64>, Vec<u64>)>, route: &str| {
        by.get(route).map_or(0, |(stalls, _)| stalls.len() as u64)
    };
    let mut failures: Vec<String> = Vec::new();
    // Transfers that completed although their client waited more than the 60 s
    // timeout for the answer (their bytes kept arriving, slowly).
    let mut slow_ok = 0u64;
    // Every failed op with its class, into `failed.jsonl` for the post-mortem.
    let mut failed_log: Vec<Value> = Vec::new();
    for op in ops.iter() {
        largest = largest.max(op.size);
        if op.corrupt {
            corrupt += 1;
        }
        let life = (op.start, op.end);
        match &op.error {
            None => {
                ok_ops += 1;
                sent += op.sent;
                verified += op.verified;
                longest_stall = longest_stall.max(op.longest_stall);
                longest_write_block = longest_write_block.max(op.longest_write_block);
                if op.waited_past_timeout {
                    slow_ok += 1;
                }
                let route = match op.route {
                    Route::Proxy => "proxy",
                    Route::Gateway => "gateway",
                };
                let (stalls, blocks) = stalls_by_route.entry(route).or_default();
                stalls.push(op.longest_stall.as_millis() as u64);
                blocks.push(op.longest_write_block.as_millis() as u64);
            }
            Some(e) => {
                // A killed proxy loses every connection it carries: any op alive
                // through a kill. A blackout is judged by when the op failed: MPTCP
                // is to carry a connection through one, so a stall that began in a
                // blackout and outlived it until the client's timeout failed with
                // every path back up.
                let userspace = userspace_at(op.start);
                let class;
                if op.route == Route::Proxy && overlaps(life, &proxy_down) {
                    failed_proxy += 1;
                    class = "proxy_killed";
                } else if during(op.end, &blackouts) {
                    failed_down += 1;
                    class = "all_paths_down";
                } else if overlaps(life, &blackouts)
                    && op
                        .local_port
                        .is_some_and(|p| dials_failed.contains(&(op.route, p)))
                {
                    // The daemon's dial ran out of time (5 s) while its SYNs went
                    // into a blackout: the one sent after it would have come
                    // after the timeout. Every path was down for that connection.
                    failed_down += 1;
                    class = "dial_in_blackout";
                } else if op.local_port.is_some_and(|p| {
                    fell_back_matches(&one_path, op.route, p, (op.end - op.start).as_secs_f64())
                }) {
                    // Its relay leg was plain TCP when it failed (fell back during
                    // or after the handshake: mptcp-proxy's crate docs, "Connections
                    // that fall back after the handshake"): one path, lost with it.
                    failed_fell_back += 1;
                    class = "fell_back_to_tcp";
                } else if overlaps(life, &blackouts) {
                    // Counted apart, not yet a violation: what the 10-minute soak
                    // still has most of (README, "Chaos soak").
                    failed_after_blackout += 1;
                    class = "after_blackout_paths_back";
                } else if path_losses.iter().any(|&at| op.start <= at && at <= op.end)
                    && op
                        .local_port
                        .is_some_and(|p| dials_failed.contains(&(op.route, p)))
                {
                    // The daemon's dial never completed and a path went meanwhile:
                    // the SYN left over it (its source address fixed), and MPTCP
                    // guards established connections, not a handshake.
                    failed_dial += 1;
                    class = "dial_path_went";
                } else {
                    failed_up += 1;
                    class = "path_up";
                    if userspace {
                        failed_up_userspace += 1;
                    }
                    if failures.len() < 10 {
                        failures.push(format!(
                            "{:?} {:.1}-{:.1} s, {} B: {e}",
                            op.route,
                            (op.start - c.start).as_secs_f64(),
                            (op.end - c.start).as_secs_f64(),
                            op.size
                        ));
                    }
                }
                failed_log.push(json!({
                    "class": class,
                    "pm": if userspace { "userspace" } else { "in-kernel" },
                    "route": format!("{:?}", op.route),
                    "start": round1((op.start - c.start).as_secs_f64()),
                    "end": round1((op.end - c.start).as_secs_f64()),
                    "size": op.size,
                    "sent": op.sent,
                    "verified": op.verified,
                    "longest_stall_ms": op.longest_stall.as_millis() as u64,
                    "longest_write_block_ms": op.longest_write_block.as_millis() as u64,
                    "local_port": op.local_port,
                    "waited_past_timeout": op.waited_past_timeout,
                    "error": e,
                }));
            }
        }
    }
    if let Err(e) = write_lines(&c.args.dir.join("failed.jsonl"), &failed_log) {
        eprintln!("mptcp-soak: cannot write failed.jsonl: {e}");
    }
    // Memory: idle after the warm-up against idle after the run, for every daemon
    // instance that lived through both. Descriptors: idle before the load against
    // idle after it.
    let quiet_idle = c.quiet.is_some_and(|q| q.idle);
    let mut per_daemon = Map::new();
    let (mut rss_max, mut fd_max) = (0f64, 0f64);
    for (name, instances) in c.samples {
        let rss_quiet = c
            .quiet
            .filter(|q| q.idle)
            .and_then(|q| q.daemons.get(name))
            .copied();
        let rss_end = c.idle_after.get(name).copied();
        let rss = match (rss_quiet, rss_end) {
            (Some((p0, s0)), Some((p1, s1))) if p0 == p1 => {
                Some((s1.rss_kb as f64 - s0.rss_kb as f64) * 100.0 / s0.rss_kb.max(1) as f64)
            }
            _ => None,
        };
        let (before, after) = (c.idle_fds_before.get(name), c.idle_fds_after.get(name));
        let fd_idle = match (before, after, instances.len()) {
            (Some(&b), Some(&a), 1) => Some((a as f64 - b as f64) * 100.0 / b.max(1) as f64),
            _ => None,
        };
        if let Some(g) = rss {
            rss_max = rss_max.max(g);
        }
        if let Some(g) = fd_idle {
            fd_max = fd_max.max(g);
        }
        let peak = |f: fn(&crate::daemons::Sample) -> u64| instances.iter().flatten().map(f).max();
        per_daemon.insert(
            name.clone(),
            json!({
                "instances": instances.len(),
                "rss_peak_kb": peak(|s| s.rss_kb),
                "fds_peak": peak(|s| s.fds),
                "rss_growth_pct": rss.map(round1),
                "rss_idle_after_warmup_kb": rss_quiet.map(|(_, s)| s.rss_kb),
                "rss_idle_after_kb": rss_end.map(|(_, s)| s.rss_kb),
                "fds_idle_before": before,
                "fds_idle_after": after,
                "fd_growth_pct": fd_idle.map(round1),
            }),
        );
    }
    // The exporter against the clients, connection for connection: every MPTCP
    // connect() on the client host is counted by the kernel once, as an MP_CAPABLE
    // SYN sent or as an early fallback (active MPTCP disabled by the blackhole
    // detection, no token). Every op that got through had its own connection (a
    // request/response loop keeps one for all its rounds), and the client daemons
    // dial at most once per connection handed to them, plus once for the readiness
    // check's connection to the client proxy (its dial can come after the first
    // scrape), plus once for each second dial after a SYN-loss fallback and for
    // each Convert exchange made again (their records say); so ops ok <= connects
    // <= handed + 1 + redials + retries. Nothing established is left.
    let delta = |name: &str| {
        metric(&c.scrape_after, name, "client") - metric(&c.scrape_before, name, "client")
    };
    let syn_tx = delta("mptcp_mib_mp_capable_syntx_total");
    let disabled = delta("mptcp_mib_mp_capable_syntx_disabled_total");
    let token_fallback = delta("mptcp_mib_mp_fallback_token_init_total");
    let blackholes = delta("mptcp_mib_blackhole_total");
    let connects = syn_tx + disabled + token_fallback;
    let handed = ops.iter().filter(|op| op.handed).count() as u64;
    let established_left = sum_metric(&c.scrape_after, "mptcp_connections{", &["established"]);
    let most = handed + 1 + redialed + converter_retried;
    let exporter_ok =
        ok_ops as f64 <= connects && connects <= most as f64 && established_left == 0.0;
    // The converter: every SYN on its uplink goes to the origin's sink.
    let allowed = format!("{}.{}", net::ORIGIN, net::SINK);
    let outside = c.dials.iter().filter(|d| **d != allowed).count() as u64 + c.trap;
    let sink = &c.sinks.stats;
    let endpoints_left = c.endpoints_left.len();
    let pm_restored = c.pm_types.0 == "0" && c.pm_types.1 == "0";
    let attempts = c.outsider.attempts.load(Ordering::Relaxed);
    let refused = c.outsider.refused.load(Ordering::Relaxed);
    let unfinished = c.run_end > c.deadline + Duration::from_secs(c.args.seconds / 2 + 120);

    let mut violations = Vec::new();
    let mut tolerated = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            let key = what.split(' ').next().unwrap_or(what);
            if c.args.tolerate.iter().any(|t| t == key) {
                tolerated.push(what.to_string());
            } else {
                violations.push(what.to_string());
            }
        }
    };
    check(sent == verified, "bytes_verified < bytes_sent");
    check(
        corrupt == 0 && sink.corrupt.load(Ordering::Relaxed) == 0,
        "corrupted",
    );
    check(failed_up == 0, "failed_with_path_up > 0");
    check(
        quiet_idle,
        "quiet point not idle (memory growth not measured)",
    );
    check(rss_max < 5.0, "rss_growth_pct >= 5");
    check(fd_max < 5.0, "fd_growth_pct >= 5");
    check(endpoints_left == 0, "endpoints_left > 0");
    check(pm_restored, "pm_type_restored false");
    check(exporter_ok, "exporter_consistent false");
    check(outside == 0, "converter_outside_allow > 0");
    check(
        attempts > 0 && refused == attempts,
        "outsider_refused < outsider_attempts",
    );
    check(ok_ops > 0, "ops_ok 0");
    check(!unfinished, "drain timed out");

    let secs = (c.run_end - c.start).as_secs_f64();
    let table = !c.args.json;
    let row = |k: &str, v: String, goal: &str| {
        if table {
            println!("  {k:<34} {v:>16}   {goal}");
        }
    };
    if table {
        println!(
            "mptcp-soak: seed {}, {:.0} s ({} s of load + drain)",
            c.args.seed, secs, c.args.seconds
        );
    }
    row(
        "operations ok (proxy / gateway)",
        format!(
            "{} / {}",
            ops_on(&stalls_by_route, "proxy"),
            ops_on(&stalls_by_route, "gateway")
        ),
        "",
    );
    row("bytes sent", sent.to_string(), "");
    row("bytes verified", verified.to_string(), "= sent");
    row(
        "throughput (verified)",
        format!("{:.1} Mbit/s", verified as f64 * 8.0 / secs / 1e6),
        "",
    );
    row("largest transfer", largest.to_string(), "");
    row(
        "completed, answer waited > 60 s (bytes arriving)",
        slow_ok.to_string(),
        "counted",
    );
    row("failed with a path up", failed_up.to_string(), "0");
    row(
        "  of which started under in-kernel / --userspace pm",
        format!(
            "{} / {}",
            failed_up - failed_up_userspace,
            failed_up_userspace
        ),
        "",
    );
    row(
        "failed, every path down",
        failed_down.to_string(),
        "counted",
    );
    row(
        "failed after a blackout, paths back",
        failed_after_blackout.to_string(),
        "counted (0 wanted)",
    );
    row(
        "failed, relay leg fell back to TCP (one path)",
        failed_fell_back.to_string(),
        "counted",
    );
    row("failed, proxy killed", failed_proxy.to_string(), "counted");
    row(
        "failed dial, its path went",
        failed_dial.to_string(),
        "counted",
    );
    row("corrupted", corrupt.to_string(), "0");
    row(
        "longest stall",
        format!("{} ms", longest_stall.as_millis()),
        "",
    );
    row(
        "longest blocked write (bytes arriving)",
        format!("{} ms", longest_write_block.as_millis()),
        "",
    );
    row(
        "rss growth, idle after vs after warm-up (max)",
        if quiet_idle {
            format!("{rss_max:.1} %")
        } else {
            "not measured".to_string()
        },
        "< 5 %",
    );
    row(
        "fd growth, idle after vs before",
        format!("{fd_max:.1} %"),
        "< 5 %",
    );
    row("endpoints left", endpoints_left.to_string(), "0");
    row(
        "exporter: ops ok <= connects <= handed+1+redials+retries",
        format!("{ok_ops} <= {connects:.0} <= {most}"),
        "consistent",
    );
    row(
        "  of which active MPTCP disabled",
        format!("{disabled:.0} ({blackholes:.0} blackholes)"),
        "",
    );
    row(
        "relays' second dials after lost SYNs",
        format!("{redialed} ({redialed_mptcp} got MPTCP)"),
        "",
    );
    row(
        "gateway: Convert exchanges made again",
        converter_retried.to_string(),
        "",
    );
    row(
        "converter: duplicate Convert messages dropped",
        duplicates_dropped.to_string(),
        "",
    );
    row(
        "exporter: established left",
        format!("{established_left:.0}"),
        "0",
    );
    row("converter dials outside --allow", outside.to_string(), "0");
    row(
        "outsider requests refused",
        format!("{refused}/{attempts}"),
        "all",
    );
    for f in &failures {
        eprintln!("  failure: {f}");
    }
    for e in &c.endpoints_left {
        eprintln!("  endpoint left: {e}");
    }
    for e in &c.implicit_left {
        eprintln!("  implicit endpoint left (the kernel's): {e}");
    }
    for v in &violations {
        eprintln!("  VIOLATED: {v}");
    }
    for v in &tolerated {
        eprintln!("  VIOLATED (tolerated by --tolerate): {v}");
    }
    let out = json!({
        "seed": c.args.seed,
        "seconds": c.args.seconds,
        "concurrency": c.args.concurrency,
        "rate_mbit": c.args.rate_mbit,
        "ops_ok": ok_ops,
        "ops_proxy": ops_on(&stalls_by_route, "proxy"),
        "ops_gateway": ops_on(&stalls_by_route, "gateway"),
        "bytes_sent": sent,
        "bytes_verified": verified,
        "sink_bytes_checked": sink.verified.load(Ordering::Relaxed),
        "sink_empty_connections": sink.empty.load(Ordering::Relaxed),
        "largest_transfer": largest,
        "failed_with_path_up": failed_up,
        "failed_all_paths_down": failed_down,
        "failed_proxy_killed": failed_proxy,
        "failed_dial_path_lost": failed_dial,
        "corrupted": corrupt + sink.corrupt.load(Ordering::Relaxed),
        "longest_stall_ms": longest_stall.as_millis() as u64,
        "rss_growth_pct": round1(rss_max),
        "quiet_point_idle": quiet_idle,
        "quiet_point_s": c.quiet.map(|q| round1(q.at)),
        "fd_growth_pct": round1(fd_max),
        "endpoints_left": endpoints_left,
        "endpoints_left_list": c.endpoints_left,
        "implicit_endpoints_left": c.implicit_left,
        "pm_type_restored": pm_restored,
        "exporter_client_syn_tx": syn_tx,
        "exporter_client_active_disabled": disabled,
        "exporter_client_token_fallback": token_fallback,
        "exporter_client_blackholes": blackholes,
        "client_connections_handed": handed,
        "exporter_established_left": established_left,
        "exporter_consistent": exporter_ok,
        "converter_dials": c.dials.len(),
        "converter_outside_allow": outside,
        "outsider_attempts": attempts,
        "outsider_refused": refused,
        "daemons": Value::Object(per_daemon),
        "violations": violations,
        "tolerated": tolerated,
        "ok": violations.is_empty(),
    });
    let mut out = out;
    out["mptcp_counters_moved"] = json!(c.counters_moved);
    out["no_strip"] = json!(c.args.no_strip);
    out["failed_after_blackout_paths_back"] = json!(failed_after_blackout);
    out["failed_fell_back_to_tcp"] = json!(failed_fell_back);
    out["completed_waiting_past_timeout"] = json!(slow_ok);
    out["longest_write_block_ms"] = json!(longest_write_block.as_millis() as u64);
    out["stall_ms_by_route"] = stall_summary(stalls_by_route);
    out["failed_with_path_up_by_pm"] = json!({
        "in_kernel": failed_up - failed_up_userspace,
        "userspace": failed_up_userspace,
    });
    out["checksum"] = json!(c.args.checksum);
    out["relay_redials"] = json!(redialed);
    out["relay_redials_mptcp"] = json!(redialed_mptcp);
    out["converter_retries"] = json!(converter_retried);
    out["convert_duplicates_dropped"] = json!(duplicates_dropped);
    out["idle_timeout_s"] = json!(c.args.idle_timeout.as_secs());
    println!("{out}");
    violations.is_empty()
}

/// The client daemons' connection records (`proxy-client.out`, `gateway.out`),
/// each with its route.
fn client_daemon_records(dir: &std::path::Path) -> Vec<(Route, Value)> {
    let mut out = Vec::new();
    for (file, route) in [
        ("proxy-client.out", Route::Proxy),
        ("gateway.out", Route::Gateway),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .map(|v| (route, v)),
        );
    }
    out
}

/// The client ports of the connections whose dial failed or got no answer, from
/// the client daemons' records (`end` `connect_failed` or `connect_timeout`, not a
/// refusal; `client` `127.0.0.1:PORT`). A port reused by
/// another connection of the run may be named too: it only ever moves a failed op
/// whose life saw a path go from one class of expected failures to another.
fn dial_failures(records: &[(Route, Value)]) -> std::collections::HashSet<(Route, u16)> {
    let mut out = std::collections::HashSet::new();
    for (route, v) in records {
        if v["end"] != "connect_failed" && v["end"] != "connect_timeout" {
            continue;
        }
        if let Some(p) = client_port(v) {
            out.insert((*route, p));
        }
    }
    out
}

/// The port of a daemon record's `client` (`127.0.0.1:PORT`).
fn client_port(v: &Value) -> Option<u16> {
    v["client"]
        .as_str()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
}

/// How close a daemon record's duration must be to a failed op's life to be taken
/// for its record (a client port is reused over a run).
const LIFE_MATCH_S: f64 = 1.0;

/// The failed connections whose relay leg was plain TCP when it failed, by client
/// port, with their durations (s): it fell back at the dial (`upstream_mptcp`
/// `fell_back`) or later (`upstream_fell_back_later`). Such a connection lives on
/// one path. A failed op takes this class only when one of its port's durations
/// matches its life ([`LIFE_MATCH_S`]): a path-up failure is not excused by
/// another connection that had its port.
fn fell_back_to_tcp(records: &[(Route, Value)]) -> HashMap<(Route, u16), Vec<f64>> {
    let mut out: HashMap<(Route, u16), Vec<f64>> = HashMap::new();
    for (route, v) in records {
        if v["error"].is_null()
            || (v["upstream_mptcp"] != "fell_back" && v["upstream_fell_back_later"] != true)
        {
            continue;
        }
        if let (Some(p), Some(d)) = (client_port(v), v["duration"].as_f64()) {
            out.entry((*route, p)).or_default().push(d);
        }
    }
    out
}

/// Whether the failed op of `route` from client port `port` that lived `life`
/// seconds is one of [`fell_back_to_tcp`]'s: a record of its port whose duration is
/// within [`LIFE_MATCH_S`] of its life.
fn fell_back_matches(
    one_path: &HashMap<(Route, u16), Vec<f64>>,
    route: Route,
    port: u16,
    life: f64,
) -> bool {
    one_path
        .get(&(route, port))
        .is_some_and(|lives| lives.iter().any(|d| (d - life).abs() <= LIFE_MATCH_S))
}

/// The client daemons' second dials after a SYN-loss fallback (`upstream_redial`
/// in their records), and how many of them got MPTCP. Each is one more MPTCP
/// `connect()` than the connections handed to the daemons.
fn redials(records: &[(Route, Value)]) -> (u64, u64) {
    let outcomes: Vec<&Value> = records
        .iter()
        .map(|(_, v)| &v["upstream_redial"])
        .filter(|r| !r.is_null())
        .collect();
    let mptcp = outcomes.iter().filter(|r| **r == "mptcp").count() as u64;
    (outcomes.len() as u64, mptcp)
}

/// The gateway's Convert exchanges made again on a new converter connection
/// (`converter_retry` in its records): each is one more MPTCP `connect()`.
fn converter_retries(records: &[(Route, Value)]) -> u64 {
    records
        .iter()
        .filter(|(_, v)| !v["converter_retry"].is_null())
        .count() as u64
}

/// The converter's records (`converter.out`) that dropped a second copy of a
/// Convert message (`convert_duplicate_dropped`): bytes the kernel delivered
/// twice, kept from the sink.
fn convert_duplicates(dir: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("converter.out")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["convert_duplicate_dropped"] == true)
        .count() as u64
}

/// Every RSS and descriptor sample as a JSON line in `samples.jsonl` (daemon,
/// instance, seconds from the start), for the post-mortem of a growth.
pub fn dump_samples(
    samples: &Samples,
    start: Instant,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("samples.jsonl"))?);
    for (name, instances) in samples {
        for (i, inst) in instances.iter().enumerate() {
            for s in inst {
                let line = json!({
                    "daemon": name,
                    "instance": i,
                    "at": round1(s.at.saturating_duration_since(start).as_secs_f64()),
                    "rss_kb": s.rss_kb,
                    "fds": s.fds,
                });
                writeln!(f, "{line}")?;
            }
        }
    }
    f.flush()
}

/// The faults as they were carried out, as JSON lines in `events.jsonl` (`at`:
/// seconds from the start, `action`), to read next to `ops.jsonl` and
/// `counters.jsonl`.
pub fn dump_events(
    timeline: &crate::Timeline,
    start: Instant,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    let lines: Vec<Value> = timeline
        .events
        .iter()
        .map(|(at, action)| {
            json!({
                "at": round1(at.saturating_duration_since(start).as_secs_f64()),
                "action": format!("{action:?}"),
            })
        })
        .collect();
    write_lines(&dir.join("events.jsonl"), &lines)
}

/// Every operation as a JSON line in `ops.jsonl` (times from the start), for the
/// post-mortem of a failed run.
pub fn dump_ops(stats: &Stats, start: Instant, dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("ops.jsonl"))?);
    for op in stats.ops.lock().expect("ops").iter() {
        let line = json!({
            "route": format!("{:?}", op.route),
            "start": (op.start - start).as_secs_f64(),
            "end": (op.end - start).as_secs_f64(),
            "size": op.size,
            "sent": op.sent,
            "verified": op.verified,
            "longest_stall_ms": op.longest_stall.as_millis() as u64,
            "longest_write_block_ms": op.longest_write_block.as_millis() as u64,
            "error": op.error,
            "handed": op.handed,
            "local_port": op.local_port,
            "waited_past_timeout": op.waited_past_timeout,
        });
        writeln!(f, "{line}")?;
    }
    f.flush()
}

fn write_lines(path: &std::path::Path, lines: &[Value]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(f, "{line}")?;
    }
    f.flush()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The median, 99th percentile, maximum and count over 40 s of each route's
/// completed operations' longest stalls and longest blocked writes (ms): where the
/// long ones are, at a glance.
fn stall_summary(by_route: BTreeMap<&str, (Vec<u64>, Vec<u64>)>) -> Value {
    let summary = |mut v: Vec<u64>| {
        v.sort_unstable();
        let at = |q: f64| v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)));
        json!({
            "p50": at(0.5),
            "p99": at(0.99),
            "max": v.last(),
            "over_40s": v.iter().filter(|&&ms| ms > 40_000).count(),
        })
    };
    let mut out = serde_json::Map::new();
    for (route, (stalls, blocks)) in by_route {
        out.insert(
            route.to_string(),
            json!({"stall": summary(stalls), "write_block": summary(blocks)}),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_a_fallback_only_with_its_own_record() {
        let line = |client: &str, mptcp: &str, later: bool, error: bool, duration: f64| {
            let mut v = json!({
                "client": client, "upstream_mptcp": mptcp, "duration": duration,
            });
            if later {
                v["upstream_fell_back_later"] = json!(true);
            }
            if error {
                v["error"] = json!("upstream: Connection timed out (os error 110)");
            }
            v
        };
        let records = vec![
            (
                Route::Gateway,
                line("127.0.0.1:35584", "active", true, true, 21.5),
            ),
            (
                Route::Proxy,
                line("127.0.0.1:40000", "fell_back", false, true, 3.0),
            ),
            // Fell back, but ended cleanly: not a failure's record.
            (
                Route::Proxy,
                line("127.0.0.1:40001", "fell_back", false, false, 3.0),
            ),
            // MPTCP to the end.
            (
                Route::Proxy,
                line("127.0.0.1:40002", "active", false, true, 3.0),
            ),
        ];
        let m = fell_back_to_tcp(&records);
        assert!(fell_back_matches(&m, Route::Gateway, 35584, 21.9));
        // The same port's record, but another connection's life (a reused port).
        assert!(!fell_back_matches(&m, Route::Gateway, 35584, 40.0));
        // Another route's record of that port.
        assert!(!fell_back_matches(&m, Route::Proxy, 35584, 21.5));
        assert!(fell_back_matches(&m, Route::Proxy, 40000, 3.4));
        assert!(!fell_back_matches(&m, Route::Proxy, 40001, 3.0));
        assert!(!fell_back_matches(&m, Route::Proxy, 40002, 3.0));
    }

    #[test]
    fn stall_summary_per_route() {
        let mut by_route = BTreeMap::new();
        by_route.insert(
            "gateway",
            (vec![61_000, 1_000, 2_000, 45_000], vec![0, 5, 90_000, 7]),
        );
        by_route.insert("proxy", (vec![300], vec![10]));
        let v = stall_summary(by_route);
        assert_eq!(v["gateway"]["stall"]["p50"], 45_000);
        assert_eq!(v["gateway"]["stall"]["p99"], 61_000);
        assert_eq!(v["gateway"]["stall"]["max"], 61_000);
        assert_eq!(v["gateway"]["stall"]["over_40s"], 2);
        assert_eq!(v["gateway"]["write_block"]["over_40s"], 1);
        assert_eq!(v["gateway"]["write_block"]["max"], 90_000);
        assert_eq!(v["proxy"]["stall"]["p50"], 300);
        assert_eq!(v["proxy"]["stall"]["p99"], 300);
        assert_eq!(v["proxy"]["write_block"]["over_40s"], 0);
    }
}
