//! `mptcp run`'s command line: the engine (crates/mptcp-run, whose tests run
//! real programs under both modes in-process) through the built binary, in a
//! fresh network namespace, against an MPTCP listener that records whether
//! each connection it accepts uses MPTCP: `--netns`, `--mode`, `--check`'s
//! text, the program's exit status and signals passed through, the tracees
//! of a killed `mptcp run`, set-ID programs for unprivileged users,
//! `--unit` drop-ins, and a `cargo install`ed binary with the preload library
//! embedded.
//!
//! Needs root, iproute2, curl, python3, a C compiler with a static libc
//! (libc6-dev), `mptcpize` (Debian mptcpd) and `setpriv`: `scripts/test`
//! installs what is missing. A missing tool fails the test, naming it.

mod common;
// The test programs, the preload library build and the recording listener,
// shared with crates/mptcp-run/tests.
#[path = "../../mptcp-run/tests/common/mod.rs"]
mod programs;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mptcp_net::MptcpStatus::{Active, PlainTcp};
use mptcp_testnet::Netns;
use programs::{bounded as output, ok, stderr, tmp, which, Recorder};
use rustix::process::{kill_process, Pid, Signal};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// A fresh namespace, with the preload library built next to the binary.
fn ns(label: &str) -> Netns {
    preload_built();
    programs::netns(label)
}

/// Builds the preload library next to the `mptcp` binary, as a workspace
/// `cargo build` does (`cargo nextest run -p mptcp-cli` alone would not).
fn preload_built() {
    let lib = programs::preload_library();
    let bin = Path::new(env!("CARGO_BIN_EXE_mptcp"));
    assert_eq!(
        lib.parent(),
        bin.parent(),
        "the library is beside the binary"
    );
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

/// The command line reaches the engine: `--netns` and each `--mode` (curl
/// and the static C client), `--check`'s text, `--dial-only`.
#[test]
fn curl_and_a_static_program_under_each_mode_and_check() {
    let ns = ns("run-cli");
    let rec = Recorder::new(&ns);
    assert_eq!(
        ok(&programs::plain(&ns, "curl", &["-sS", &rec.url()])),
        "ok"
    );
    assert_eq!(rec.take(), [PlainTcp], "curl without mptcp run");
    for mode in ["auto", "preload", "trace"] {
        let out = mptcp_run(&ns, &["--mode", mode], "curl", &["-sS", &rec.url()]);
        assert_eq!(ok(&out), "ok", "{mode}");
        assert_eq!(rec.take(), [Active], "curl under mptcp run --mode {mode}");
    }
    let out = mptcp_run(&ns, &["--listen-only"], "curl", &["-sS", &rec.url()]);
    assert_eq!(ok(&out), "ok");
    assert_eq!(rec.take(), [PlainTcp], "curl under mptcp run --listen-only");

    let dial = programs::static_c();
    let d = dial.to_str().unwrap();
    let port = rec.port();
    let out = mptcp_run(&ns, &["--mode", "preload"], d, &["127.0.0.1", &port]);
    ok(&out);
    assert!(
        stderr(&out).contains("preload cannot reach"),
        "the plan's warning is printed: {}",
        stderr(&out)
    );
    assert_eq!(rec.take(), [PlainTcp], "static C under preload");
    ok(&mptcp_run(&ns, &[], d, &["127.0.0.1", &port]));
    assert_eq!(rec.take(), [Active], "static C under auto");
    let text = ok(&mptcp_run(&ns, &["--check"], d, &[]));
    assert!(text.contains("mode:    trace"), "{text}");
    assert!(text.contains("statically linked"), "{text}");
    let text = ok(&mptcp_run(&ns, &["--check"], "curl", &[]));
    assert!(text.contains("mode:    preload"), "{text}");
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
    std::fs::copy(programs::dynamic_c(), &prog).unwrap();
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
