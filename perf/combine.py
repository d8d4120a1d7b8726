#!/usr/bin/env python3
"""Combines what perf/run.sh's areas measured into perf/RESULTS.md and results.json.

Each area left, in the run's directory, its log (NAME.log), its exit status
(NAME.rc), its time (NAME.seconds) and, where the area writes one, its JSON
(core.json, proxy-*.json, lb.json); the rest is read from the log's stable lines.
Every target of the issues is judged here, next to its figure, with why a miss
happened where the figures say it.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics as st
import subprocess
import sys


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def med(v):
    return st.median(v) if v else float("nan")


def span(v, d=0):
    if not v:
        return "-"
    return f"{st.median(v):.{d}f} [{min(v):.{d}f}-{max(v):.{d}f}]"


def target(area, name, figure, shown, met, why=None, judged=True):
    return {"area": area, "target": name, "figure": figure, "shown": shown,
            "met": bool(met) if judged else None, "why": why if judged and not met else None}


# ---------------------------------------------------------------- core
def core(d, mode):
    data = json.loads(read(os.path.join(d, "core.json"), "null") or "null")
    if not data:
        return None
    targets = [target("core", f"item {t['item']}: {t['target']}", t["figure"], t["shown"],
                      t["met"], t.get("why")) for t in data.get("targets", [])]
    md = ["Details, every figure and why each miss: [perf/core/RESULTS.md](core/RESULTS.md) "
          "(`perf/core/run.sh`)."]
    return {"targets": targets, "markdown": "\n".join(md),
            "figures": {"errors": data.get("errors", [])}}


# ---------------------------------------------------------------- proxy
PROXY_KEYS = ["mbit_per_s", "cpu_s_per_gb", "conns_per_s", "cpu_s_per_10k_conns"]


def proxy(d, mode):
    runs = {}
    for name in ("mptcp", "tcp", "mptcp-logs", "threads2"):
        text = read(os.path.join(d, f"proxy-{name}.json"))
        if text:
            runs[name] = json.loads(text)
    if not runs:
        return None
    targets, md, figures = [], [], {}
    for legs in ("mptcp", "tcp", "mptcp-logs"):
        run = runs.get(legs)
        if not run:
            continue
        r = run["relays"]
        label = {"mptcp": "MPTCP legs", "tcp": "TCP legs",
                 "mptcp-logs": "MPTCP legs, a log line per connection on both"}[legs]
        md.append(f"**{label}** ({run['rounds']} rounds of {run['secs']:g} s, one relay thread; "
                  f"median [min-max])\n")
        md.append("| relay | Mbit/s | CPU-s per GB | connections/s | CPU-s per 10k conns |")
        md.append("|---|---|---|---|---|")
        for relay, v in r.items():
            cpu = relay != "direct"
            md.append(f"| {relay} | {span(v['mbit_per_s'])} | "
                      f"{span(v['cpu_s_per_gb'], 2) if cpu else '-'} | {span(v['conns_per_s'])} | "
                      f"{span(v['cpu_s_per_10k_conns'], 2) if cpu else '-'} |")
        md.append("")
        figures[legs] = {relay: {k: med(v[k]) for k in PROXY_KEYS} for relay, v in r.items()}
        if "mptcp" not in r or "haproxy" not in r:
            continue
        m, h = figures[legs]["mptcp"], figures[legs]["haproxy"]
        direct = figures[legs].get("direct")
        limit = ""
        if direct:
            limit = (f"; direct (no relay, the limit): proxy {m['mbit_per_s'] / direct['mbit_per_s']:.2f}x "
                     f"of its throughput, {m['conns_per_s'] / direct['conns_per_s']:.2f}x of its rate, "
                     f"HAProxy {h['mbit_per_s'] / direct['mbit_per_s']:.2f}x and "
                     f"{h['conns_per_s'] / direct['conns_per_s']:.2f}x")
        md.append(f"Ratios to HAProxy (median over median){limit}.\n")
        for key, name, threshold, higher in (
            ("mbit_per_s", "throughput", 1.1, True),
            ("conns_per_s", "connection rate", 1.1, True),
            ("cpu_s_per_gb", "CPU per GB", 0.9, False),
            ("cpu_s_per_10k_conns", "CPU per connection", 0.9, False),
        ):
            ratio = m[key] / h[key] if h[key] else float("nan")
            met = ratio >= threshold if higher else ratio <= threshold
            rounds = [a / b for a, b in zip(r["mptcp"][key], r["haproxy"][key]) if b]
            shown = f"{ratio:.2f}x" + (f" [{min(rounds):.2f}-{max(rounds):.2f}]" if len(rounds) > 1 else "")
            why = None
            if not met and key in ("conns_per_s", "cpu_s_per_10k_conns"):
                why = ("per connection both relays make nearly the same system calls and about "
                       "88% of the proxy's CPU is the kernel's (accept, connect, the handshakes "
                       "and teardown, preemption by the load generator sharing the two cores); "
                       "its user-space share is spread over tokio with no item above 0.5% "
                       "(perf record, perf/proxy/README.md). What is left to try is fewer or "
                       "batched system calls per connection (the records' two status queries, "
                       "io_uring)")
            elif not met:
                why = "see perf/proxy/README.md (where the time goes)"
            targets.append(target("proxy", f"{label}: {name} {'>=' if higher else '<='} "
                                  f"{threshold}x HAProxy", ratio, shown, met, why))
    t2 = runs.get("threads2")
    if t2 and "mptcp" in figures:
        r2 = {relay: {k: med(v[k]) for k in PROXY_KEYS} for relay, v in t2["relays"].items()}
        figures["threads2"] = r2
        for relay in ("mptcp", "haproxy"):
            if relay in r2 and relay in figures["mptcp"]:
                one = figures["mptcp"][relay]["conns_per_s"]
                scale = r2[relay]["conns_per_s"] / one if one else float("nan")
                figures.setdefault("scaling", {})[relay] = scale
        s = figures.get("scaling", {})
        if "mptcp" in s:
            shown = f"{s['mptcp']:.2f}x (HAProxy nbthread 2: {s.get('haproxy', float('nan')):.2f}x)"
            targets.append(target(
                "proxy", "connection rate with --threads 2 >= 1.7x one thread", s["mptcp"], shown,
                s["mptcp"] >= 1.7,
                "the load generator (16 dialing loops and their server) runs on the same two "
                "cores as the relay, so a second relay thread takes its core from the load: "
                "scaling can only be shown with the load on other machines"))
    return {"targets": targets, "markdown": "\n".join(md), "figures": figures}


# ---------------------------------------------------------------- gateway
def gateway(d, mode):
    log = read(os.path.join(d, "gateway.log"))
    if not log:
        return None
    rows = {}
    for m in re.finditer(r"^\| (.+?) \| ([\d.]+) \[[\d.]+-[\d.]+\] \| ([\d.]+) \| ([\d.]+) \|$", log, re.M):
        rows[m.group(1)] = {"mbit_per_s": float(m.group(2)), "client_cpu_s_per_gb": float(m.group(3)),
                            "server_cpu_s_per_gb": float(m.group(4))}
    md = [line for line in log.splitlines() if line.startswith("|")]
    targets = []
    ours, ss = rows.get("mptcp gateway + converter"), rows.get("sslocal + ssserver (none)")
    if ours and ss:
        ratio = ours["mbit_per_s"] / ss["mbit_per_s"]
        targets.append(target("gateway", "throughput >= 1.5x shadowsocks-rust (cipher none)", ratio,
                              f"{ratio:.2f}x", ratio >= 1.5, "see perf/gateway/README.md"))
        cpu = lambda r: r["client_cpu_s_per_gb"] + r["server_cpu_s_per_gb"]
        c = cpu(ours) / cpu(ss)
        targets.append(target("gateway", "CPU per GB lower than shadowsocks-rust (cipher none)", c,
                              f"{c:.2f}x", c < 1.0, "see perf/gateway/README.md"))
    return {"targets": targets, "markdown": "\n".join(md), "figures": rows}


# ---------------------------------------------------------------- exporter
def exporter(d, mode):
    log = read(os.path.join(d, "exporter.log"))
    if not log:
        return None
    m = re.search(r"scrape of (\d+) connections", log)
    n = int(m.group(1)) if m else 0
    http = re.search(r"GET /metrics over loopback\s+median\s+([\d.]+) ms\s+p90\s+([\d.]+) ms\s+max\s+([\d.]+) ms", log)
    figures = {"connections": n}
    targets = []
    if http:
        median, p90, mx = map(float, http.groups())
        figures.update({"scrape_ms_median": median, "scrape_ms_p90": p90, "scrape_ms_max": mx})
        targets.append(target("exporter", f"one scrape (GET /metrics) with 1,000 live MPTCP "
                              f"connections < 20 ms", median,
                              f"{median:.1f} ms median, {p90:.1f} p90, {mx:.1f} max ({n} connections)",
                              median < 20.0, "the sock_diag dump of every connection and subflow "
                              "dominates; see the parts below", judged=(n >= 1000)))
    md = ["```", *[l for l in log.splitlines() if l.startswith(("scrape of", "  "))], "```"]
    return {"targets": targets, "markdown": "\n".join(md), "figures": figures}


# ---------------------------------------------------------------- run
def run_cost(d, mode):
    log = read(os.path.join(d, "run.log"))
    if not log:
        return None
    rates = {}
    for line in log.splitlines():
        m = re.match(r"^(.+?)\s{2,}(\d+)\s+(\w+)\s{2}", line)
        if m and m.group(1) != "configuration":
            rates[m.group(1).strip()] = int(m.group(2))
    figures = {"socket_per_s": rates}
    md = ["```", *[l for l in log.splitlines() if l and not l.startswith(("   Compiling", "warning"))][-10:], "```"]
    un, tr = rates.get("untraced TCP"), rates.get("trace: TCP made MPTCP")
    if un and tr:
        cost = 1e6 / tr - 1e6 / un
        figures["trace_cost_us_per_socket"] = cost
        md.append(f"\nTracing costs {cost:.1f} µs per TCP socket() (untraced {un}/s, traced {tr}/s); "
                  "no other system call is slowed. The issue set no target: measured only.")
    return {"targets": [], "markdown": "\n".join(md), "figures": figures}


# ---------------------------------------------------------------- pm
PM_LINE = re.compile(r"^(mptcp pm run|mptcpd addr_adv): endpoint removed after (\d+ ms|never \(stale\)); "
                     r"longest stall (\d+) ms; ([\d.]+) Mbit/s; path 1 back after (\d+ ms|never); "
                     r"byte-exact (\w+)")


def pm(d, mode):
    log = read(os.path.join(d, "pm.log"))
    if not log:
        return None
    runs = {"mptcp pm run": [], "mptcpd addr_adv": []}
    for line in log.splitlines():
        m = PM_LINE.match(line.strip())
        if m:
            ms = lambda s: float(s.split()[0]) if s[0].isdigit() else None
            runs[m.group(1)].append({"removal_ms": ms(m.group(2)), "stall_ms": float(m.group(3)),
                                     "mbit_per_s": float(m.group(4)), "back_ms": ms(m.group(5)),
                                     "byte_exact": m.group(6) == "true"})
    md = ["| manager | endpoint removed after | longest stall | path 1 carries again after | Mbit/s |",
          "|---|---|---|---|---|"]
    for name, rs in runs.items():
        if not rs:
            continue
        col = lambda k, u: span([r[k] for r in rs if r[k] is not None]) + u \
            if any(r[k] is not None for r in rs) else "never"
        md.append(f"| {name} | {col('removal_ms', ' ms')} | {col('stall_ms', ' ms')} | "
                  f"{col('back_ms', ' ms')} | {span([r['mbit_per_s'] for r in rs], 1)} |")
    md.append("\nTwo 20 Mbit/s paths, an upload, path 1's peer link down at 1.5 s and back at 3.5 s "
              "(the pm failover tests, `--no-capture`).")
    ours = runs["mptcp pm run"]
    targets = []
    if ours:
        worst = lambda k: max((r[k] if r[k] is not None else float("inf")) for r in ours)
        for k, name, limit in (("removal_ms", "endpoint of a lost link removed", 1000),
                               ("stall_ms", "longest stall of a running transfer", 1000),
                               ("back_ms", "the same connection on path 1 again after its return", 2000)):
            w = worst(k)
            targets.append(target("pm", f"{name} < {limit / 1000:g} s (every run)", w,
                                  f"{w:.0f} ms (worst of {len(ours)})", w < limit,
                                  "see the pm test's output in the log"))
        exact = all(r["byte_exact"] for r in ours)
        targets.append(target("pm", "the transfer is byte-exact", 1.0 if exact else 0.0,
                              "yes" if exact else "no", exact))
    return {"targets": targets, "markdown": "\n".join(md), "figures": runs}


# ---------------------------------------------------------------- lb
def lb(d, mode):
    data = json.loads(read(os.path.join(d, "lb.json"), "null") or "null")
    if not data:
        return None
    md = ["| balancer | scenario | multipath share | join ms median/p90 | no-token resets | aggregate vs one path |",
          "|---|---|---|---|---|---|"]
    targets = []
    for s in data:
        md.append(f"| {s['balancer']} | {s['scenario']} | {s['multipath_share'] * 100:.0f}% | "
                  f"{s['join_ms_median']:.0f}/{s['join_ms_p90']:.0f} | {s['no_token_resets']} | "
                  f"{s['aggregate_vs_one_path']:.2f}x |")
        if s["scenario"].startswith("no help"):
            continue
        name = f"{s['balancer']}, {s['scenario']}"
        targets.append(target("lb", f"{name}: >= 99% of connections multipath",
                              s["multipath_share"], f"{s['multipath_share'] * 100:.0f}%",
                              s["multipath_share"] >= 0.99, "see perf/lb/NOTES.md"))
        targets.append(target("lb", f"{name}: MPJoinNoTokenFound = 0", s["no_token_resets"],
                              str(s["no_token_resets"]), s["no_token_resets"] == 0,
                              "see perf/lb/NOTES.md"))
        targets.append(target("lb", f"{name}: throughput >= 1.8x one path",
                              s["aggregate_vs_one_path"], f"{s['aggregate_vs_one_path']:.2f}x",
                              s["aggregate_vs_one_path"] >= 1.8, "see perf/lb/NOTES.md"))
    return {"targets": targets, "markdown": "\n".join(md), "figures": data}


AREAS = {
    "core": ("mptcp-net against raw sockets, Go and the `mptcp` crate", "perf/core/run.sh", core),
    "proxy": ("mptcp proxy against HAProxy 2.6", "perf/proxy/compare.sh", proxy),
    "gateway": ("gateway + converter against shadowsocks-rust", "perf/gateway/compare.sh", gateway),
    "exporter": ("mptcp exporter: one scrape", "perf/target/release/exporter-scrape", exporter),
    "run": ("mptcp run: the cost per socket()", "perf/mptcp-run/run.sh", run_cost),
    "pm": ("mptcp pm run against mptcpd: a lost link", "the pm failover tests", pm),
    "lb": ("the balancer fleet", "perf/lb/run.sh", lb),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--areas", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    d = a.dir
    loads = [float(x) for x in (read(os.path.join(d, "load"), "") or "").split()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = "?"
    for line in (read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    machine = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "mode": a.mode,
        "load_before": (read(os.path.join(d, "load-before"), "") or "").split(),
        "load_after": (read(os.path.join(d, "load-after"), "") or "").split(),
        "load_sampled": {"min": min(loads), "median": med(loads), "max": max(loads),
                         "samples": len(loads)} if loads else None,
    }
    results = {"machine": machine, "areas": {}, "targets": []}
    sections = []
    for name in a.areas.split():
        title, entry, fn = AREAS[name]
        rc = read(os.path.join(d, f"{name}.rc"))
        skipped = read(os.path.join(d, f"{name}.skipped"))
        secs = float(read(os.path.join(d, f"{name}.seconds"), "0") or 0)
        area = {"title": title, "entry_point": entry, "seconds": secs}
        if skipped:
            area["status"] = "skipped: " + skipped.strip()
            body = None
        else:
            failed = rc is not None and rc.strip() != "0"
            try:
                body = fn(d, a.mode)
            except Exception as e:  # a log we cannot read is reported, not fatal
                body, failed = None, True
                area["error"] = f"reading its output: {e}"
            area["status"] = "failed" if failed or body is None else "ok"
            if area["status"] == "failed":
                tail = (read(os.path.join(d, f"{name}.log"), "") or "").strip().splitlines()[-8:]
                area["log_tail"] = tail
        if body:
            area["figures"] = body["figures"]
            results["targets"].extend(body["targets"])
        results["areas"][name] = area
        sections.append((name, area, body))

    t = results["targets"]
    met = sum(1 for x in t if x["met"] is True)
    missed = sum(1 for x in t if x["met"] is False)
    out = [
        "# Every figure in one run",
        "",
        "Written by `perf/run.sh` (as root; `--quick` for a short run, `--areas` for some). "
        "Benchmarks, not tests: nothing here gates CI. Each area's own script is its entry point "
        "and writes its longer report; this page puts every target next to its figure.",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {machine['date']} |",
        f"| machine | {machine['cpu']}, {machine['cores']} cores |",
        f"| kernel | {machine['kernel']} |",
        f"| commit | {machine['commit']} |",
        f"| mode | {a.mode} |",
    ]
    ls = machine["load_sampled"]
    if ls:
        out.append(f"| load average (1 min), sampled every 2 s | min {ls['min']:.2f}, median "
                   f"{ls['median']:.2f}, max {ls['max']:.2f}; before {' '.join(machine['load_before'])}, "
                   f"after {' '.join(machine['load_after'])} |")
    out.append("| time per area (s, builds not included) | " + ", ".join(
        f"{n} {ar['seconds']:.0f}" for n, ar in results["areas"].items() if ar["seconds"]) + " |")
    out += ["", f"## Targets: {met} met, {missed} missed", "",
            "| area | target | figure | result |", "|---|---|---|---|"]
    for x in t:
        res = {True: "met", False: "**MISSED**", None: "not judged (quick run)"}[x["met"]]
        out.append(f"| {x['area']} | {x['target']} | {x['shown']} | {res} |")
    for name, area in results["areas"].items():
        if area["status"] != "ok":
            out.append(f"| {name} | (every target of the area) | - | {area['status']} |")
    misses = [x for x in t if x["met"] is False and x["why"]]
    if misses:
        out += ["", "### Why each miss", ""]
        for x in misses:
            out.append(f"- **{x['area']}: {x['target']}** ({x['shown']}): {x['why'].rstrip('.')}.")
    for name, area, body in sections:
        out += ["", f"## {name}: {area['title']}", "",
                f"Entry point: `{area['entry_point']}`; {area['seconds']:.0f} s in this run; {area['status']}.", ""]
        if body:
            out.append(body["markdown"])
        if area.get("log_tail"):
            out += ["", "Last lines of its log:", "", "```", *area["log_tail"], "```"]
    with open(a.markdown, "w") as f:
        f.write("\n".join(out) + "\n")
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1, default=str)
        f.write("\n")
    print(f"{met} targets met, {missed} missed", file=sys.stderr)


if __name__ == "__main__":
    main()
