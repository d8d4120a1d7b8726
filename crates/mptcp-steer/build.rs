//! Compiles `bpf/steer.c` into `$OUT_DIR/steer.o` with Debian's clang when
//! feature `bpf` is on. `MPTCP_STEER_CLANG` names another clang.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const CLANGS: [&str; 4] = ["clang-16", "clang-19", "clang-14", "clang"];
const INSTALL: &str = "apt-get install clang-16 libbpf-dev";

fn fail(msg: &str) -> ! {
    eprintln!("error: mptcp-steer: {msg}");
    exit(1);
}

fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn main() {
    println!("cargo:rerun-if-changed=bpf/steer.c");
    println!("cargo:rerun-if-env-changed=MPTCP_STEER_CLANG");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    if env::var_os("CARGO_FEATURE_BPF").is_none() {
        return;
    }
    // docs.rs builds documentation only, possibly without clang or libbpf
    // headers: an empty object lets the crate compile (it is never loaded).
    if env::var_os("DOCS_RS").is_some() {
        let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR unset")));
        std::fs::write(out.join("steer.o"), b"").unwrap_or_else(|e| fail(&e.to_string()));
        return;
    }
    let clang = match env::var("MPTCP_STEER_CLANG") {
        Ok(c) => {
            on_path(&c).unwrap_or_else(|| fail(&format!("MPTCP_STEER_CLANG={c} is not found")))
        }
        Err(_) => CLANGS.iter().find_map(|c| on_path(c)).unwrap_or_else(|| {
            fail(&format!(
                "no clang on PATH (tried {}) to build the BPF program: {INSTALL}",
                CLANGS.join(", ")
            ))
        }),
    };
    if !Path::new("/usr/include/bpf/bpf_helpers.h").is_file() {
        fail(&format!(
            "/usr/include/bpf/bpf_helpers.h is missing to build the BPF program: {INSTALL}"
        ));
    }
    // asm/types.h lives in the multiarch directory on Debian.
    let multiarch = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR unset")))
        .join("steer.o");
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", "bpf/steer.c", "-o"])
        .arg(&out)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", clang.display())));
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        fail(&format!(
            "{} failed to build bpf/steer.c (see above); {INSTALL} gives a working toolchain",
            clang.display()
        ));
    }
}
