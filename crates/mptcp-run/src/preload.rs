//! Where `libmptcp_preload.so` is.
//!
//! Decision: the library is looked up next to the running `mptcp` binary
//! (where `cargo build` of the workspace puts both: `target/debug/mptcp` and
//! `target/debug/libmptcp_preload.so`), then in `../lib/mptcp/` and `../lib/`
//! beside it (an install under a prefix), unless `MPTCP_PRELOAD_LIB` names
//! it. Embedding the library's bytes in the binary would need a build script
//! that depends on a sibling `cdylib`, which Cargo cannot express on stable.

use std::path::{Path, PathBuf};

use crate::Error;

/// The library's file name.
pub const LIBRARY_NAME: &str = "libmptcp_preload.so";
/// The variable that overrides the lookup with a path.
pub const LIBRARY_VAR: &str = "MPTCP_PRELOAD_LIB";

/// Finds the preload library (an absolute, canonical path, as `LD_PRELOAD`
/// and a systemd drop-in need).
///
/// # Errors
/// [`Error::Library`], naming where it looked and what to do.
pub fn find_library() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(LIBRARY_VAR).filter(|v| !v.is_empty()) {
        return std::fs::canonicalize(&path).map_err(|e| {
            Error::Library(format!(
                "{LIBRARY_VAR}={} cannot be used: {e}",
                Path::new(&path).display()
            ))
        });
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Library(format!("cannot find the running binary: {e}")))?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let dir = exe.parent().unwrap_or(Path::new("/"));
    candidates(dir)
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .ok_or_else(|| {
            Error::Library(format!(
                "cannot find {LIBRARY_NAME} next to {} (build the workspace with `cargo build`, \
                 which builds it, or name it with {LIBRARY_VAR}=PATH)",
                exe.display()
            ))
        })
}

/// Where to look, in order, for a binary in `dir`.
pub fn candidates(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.join(LIBRARY_NAME)];
    if dir.ends_with("deps") {
        // A test binary in target/<profile>/deps.
        if let Some(parent) = dir.parent() {
            out.push(parent.join(LIBRARY_NAME));
        }
    }
    if let Some(prefix) = dir.parent() {
        out.push(prefix.join("lib/mptcp").join(LIBRARY_NAME));
        out.push(prefix.join("lib").join(LIBRARY_NAME));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_to_the_binary_first() {
        let c = candidates(Path::new("/usr/bin"));
        assert_eq!(c[0], Path::new("/usr/bin/libmptcp_preload.so"));
        assert!(c.contains(&PathBuf::from("/usr/lib/mptcp/libmptcp_preload.so")));
        let c = candidates(Path::new("/w/target/debug/deps"));
        assert_eq!(c[1], Path::new("/w/target/debug/libmptcp_preload.so"));
    }
}
