//! Records what `mptcp --version` and `mptcp doctor` print for bug reports: the git
//! commit the binary was built from (with `-dirty` for uncommitted changes), the
//! compiler and the target. Outside a git checkout (a crates.io package) the commit
//! is `unknown`.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = output("git", &["rev-parse", "--short=12", "HEAD"]).map(|c| {
        let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{c}-dirty")
        } else {
            c
        }
    });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!(
        "cargo:rustc-env=MPTCP_BUILD_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rustc-env=MPTCP_BUILD_RUSTC={rustc}");
    println!(
        "cargo:rustc-env=MPTCP_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // A new commit or a changed index changes the line.
    for path in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
