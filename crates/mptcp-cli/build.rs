//! Two jobs:
//!
//! 1. Records what `mptcp --version` and `mptcp doctor` print for bug reports: the
//!    git commit the binary was built from (with `-dirty` for uncommitted changes),
//!    the compiler, the target. Outside a git checkout (a source tarball) the commit
//!    is `unknown`.
//! 2. Builds the `mptcp-preload` cdylib (the `LD_PRELOAD` library of `mptcp run`)
//!    with a nested `cargo build` into its own target directory under `OUT_DIR`,
//!    same profile and target, so that `src/preload.rs` can embed it with
//!    `include_bytes!`: a binary from `cargo install --path crates/mptcp-cli` works
//!    alone. Cargo has no stable way to depend on a sibling cdylib (artifact
//!    dependencies are nightly-only), hence the nested build. Without the
//!    `embed-preload` feature (on by default), nothing is embedded and `mptcp run`
//!    looks for the library on disk only; without the preload crate's sources
//!    beside this crate (a lone crate tarball) neither, and the build says so in a
//!    warning.
//!
//! Also records the cargo features built in, for `mptcp --version`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    version_facts();
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_string))
        .filter(|f| f != "DEFAULT")
        .map(|f| f.to_lowercase().replace('_', "-"))
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    println!("cargo:rustc-env=MPTCP_BUILD_FEATURES={features}");
    embed_preload();
}

fn version_facts() {
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
    // A new commit or a changed index changes the line. In a git worktree .git
    // is a file naming the real directory: follow it.
    let dot_git = Path::new("../../.git");
    let git_dir = std::fs::read_to_string(dot_git)
        .ok()
        .and_then(|s| s.strip_prefix("gitdir:").map(|d| PathBuf::from(d.trim())))
        .unwrap_or_else(|| dot_git.to_path_buf());
    for file in ["HEAD", "index"] {
        let path = git_dir.join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Writes `OUT_DIR/preload.rs`: `pub const EMBEDDED: Option<&[u8]>`, plus a
/// content id (a hash of the bytes) for the file name it is extracted to.
fn embed_preload() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("dir"));
    let preload = manifest_dir.join("../mptcp-preload");
    println!("cargo:rerun-if-changed={}", preload.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        preload.join("Cargo.toml").display()
    );
    let generated = out_dir.join("preload.rs");
    let none = "/// No preload library is embedded in this build.\n\
                pub const EMBEDDED: Option<(&[u8], &str)> = None;\n";
    if std::env::var_os("CARGO_FEATURE_EMBED_PRELOAD").is_none() {
        std::fs::write(&generated, none).expect("write preload.rs");
        return;
    }
    if !preload.join("Cargo.toml").is_file() {
        println!(
            "cargo:warning=the mptcp-preload sources are not beside mptcp-cli ({}): \
             `mptcp run` will need libmptcp_preload.so on disk",
            preload.display()
        );
        std::fs::write(&generated, none).expect("write preload.rs");
        return;
    }
    let target = std::env::var("TARGET").expect("TARGET");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = out_dir.join("preload-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(preload.join("Cargo.toml"))
        .args(["--lib", "--target", &target])
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    // Share the outer build's job slots instead of starting as many jobs again.
    if let Some(flags) = std::env::var_os("CARGO_MAKEFLAGS") {
        cmd.env("MAKEFLAGS", flags);
    }
    // The outer cargo's own settings for this crate must not leak into the
    // nested build's view of the preload crate.
    // (`cargo clippy` lints the preload crate as a workspace member already.)
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build mptcp-preload: {e}"));
    assert!(
        status.success(),
        "building mptcp-preload (the library `mptcp run` embeds) failed: {cmd:?}"
    );
    let lib = target_dir
        .join(&target)
        .join(if release { "release" } else { "debug" })
        .join("libmptcp_preload.so");
    let bytes = std::fs::read(&lib)
        .unwrap_or_else(|e| panic!("cannot read the built {}: {e}", lib.display()));
    // FNV-1a 64: a name for the extracted file, not a security check (the
    // bytes are compared in full before a file is reused).
    let id = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let code = format!(
        "/// The preload library built with this binary, and an id of its bytes.\n\
         pub const EMBEDDED: Option<(&[u8], &str)> = Some((include_bytes!({lib:?}), \"{id:016x}\"));\n"
    );
    std::fs::write(&generated, code).expect("write preload.rs");
}
