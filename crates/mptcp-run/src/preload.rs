//! Where `libmptcp_preload.so` is.
//!
//! # Decisions
//!
//! The lookup order ([`find_library`]), first match wins:
//!
//! 1. `MPTCP_PRELOAD_LIB=PATH` ([`LIBRARY_VAR`]): the user's word.
//! 2. Next to the running binary (where a workspace `cargo build` puts both:
//!    `target/debug/mptcp` and `target/debug/libmptcp_preload.so`), then
//!    `../lib/mptcp/` and `../lib/` beside it (an install under a prefix).
//! 3. The system's directory, `/usr/lib/<multiarch triplet>/mptcp/` (where the
//!    Debian package puts it).
//! 4. The copy embedded in the binary ([`Embedded`]; the `mptcp` CLI embeds the
//!    library its build made), written once to a private runtime file:
//!    `$XDG_RUNTIME_DIR/mptcp/` (when that directory is ours), else `/run/mptcp/` for root, else
//!    `$TMPDIR/mptcp-<uid>/`; the directory must be ours and `0700`, the file is
//!    named by a hash of its bytes and is compared byte for byte before it is
//!    reused. So a binary from `cargo install` works alone.
//!
//! A file on disk rather than a sealed memfd (`LD_PRELOAD=/proc/self/fd/N`):
//! `LD_PRELOAD` is inherited by the whole process tree, but the descriptor is
//! not by every child: Python's `subprocess` closes descriptors above 2 by
//! default, as does Go's `os/exec`, and the dynamic loader of a grandchild would
//! then print an error and run it without MPTCP. A file keeps the promise for
//! the whole tree; it lives in a per-user tmpfs directory and is only ever
//! rewritten with the same bytes.
//!
//! A systemd drop-in (`mptcp run --unit`) needs a path that outlives this
//! process and that a service may read: with only the embedded copy at hand,
//! [`install_copy`] writes it to `/usr/local/lib/mptcp/`.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// The library's file name.
pub const LIBRARY_NAME: &str = "libmptcp_preload.so";
/// The variable that overrides the lookup with a path.
pub const LIBRARY_VAR: &str = "MPTCP_PRELOAD_LIB";
/// Where [`install_copy`] puts the library for systemd drop-ins (under a root).
pub const INSTALL_DIR: &str = "usr/local/lib/mptcp";

/// A preload library carried inside the running binary.
#[derive(Clone, Copy, Debug)]
pub struct Embedded {
    /// The library's bytes.
    pub bytes: &'static [u8],
    /// A short id of the bytes (hex), used in the extracted file's name.
    pub id: &'static str,
}

/// Where the library that is used came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Named by `MPTCP_PRELOAD_LIB`.
    Variable,
    /// Found next to the binary or under its prefix.
    Beside,
    /// Found in the system's directory (`/usr/lib/<triplet>/mptcp`).
    System,
    /// The binary's embedded copy, written to a private runtime file.
    Embedded,
    /// The binary's embedded copy, installed for systemd units.
    Installed,
}

impl Origin {
    /// A stable name for JSON: `variable`, `beside`, `system`, `embedded`, `installed`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Variable => "variable",
            Origin::Beside => "beside",
            Origin::System => "system",
            Origin::Embedded => "embedded",
            Origin::Installed => "installed",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Variable => "named by MPTCP_PRELOAD_LIB",
            Origin::Beside => "next to the mptcp binary",
            Origin::System => "the system's copy",
            Origin::Embedded => "the copy embedded in the mptcp binary",
            Origin::Installed => "the embedded copy, installed",
        })
    }
}

/// The library to load and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// An absolute, canonical path (as `LD_PRELOAD` and a drop-in need).
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
}

/// Finds the preload library, in the order of the module's docs, writing the
/// embedded copy to a private runtime file when nothing on disk is found.
///
/// # Errors
/// [`Error::Library`], naming where it looked and what to do.
pub fn find_library(embedded: Option<&Embedded>) -> Result<Library, Error> {
    if let Some(found) = find_on_disk()? {
        return Ok(found);
    }
    match embedded {
        Some(e) => extract(e),
        None => Err(not_found()),
    }
}

/// Steps 1 to 3 of the lookup: a library on disk, without writing anything.
///
/// # Errors
/// [`Error::Library`] when `MPTCP_PRELOAD_LIB` names a file that cannot be used.
pub fn find_on_disk() -> Result<Option<Library>, Error> {
    if let Some(path) = std::env::var_os(LIBRARY_VAR).filter(|v| !v.is_empty()) {
        return std::fs::canonicalize(&path)
            .map(|path| {
                Some(Library {
                    path,
                    origin: Origin::Variable,
                })
            })
            .map_err(|e| {
                Error::Library(format!(
                    "{LIBRARY_VAR}={} cannot be used: {e}",
                    Path::new(&path).display()
                ))
            });
    }
    let beside = exe_dir().map(|dir| candidates(&dir)).unwrap_or_default();
    let beside = beside.into_iter().map(|p| (p, Origin::Beside));
    let system = std::iter::once((system_dir().join(LIBRARY_NAME), Origin::System));
    Ok(beside
        .chain(system)
        .find(|(p, _)| p.is_file())
        .map(|(p, origin)| Library {
            path: std::fs::canonicalize(&p).unwrap_or(p),
            origin,
        }))
}

fn exe_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    exe.parent().map(Path::to_path_buf)
}

fn not_found() -> Error {
    let exe = std::env::current_exe()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|_| "the mptcp binary".into());
    Error::Library(format!(
        "cannot find {LIBRARY_NAME} next to {exe} or in {} and this binary has none \
         embedded (it was built without the embed-preload feature or the mptcp-preload \
         sources); build the workspace with `cargo build`, name the library with \
         {LIBRARY_VAR}=PATH, or use --mode trace",
        system_dir().display()
    ))
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

/// The Debian multiarch triplet of this build's target (`x86_64-linux-gnu`).
pub fn multiarch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64-linux-gnu"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else if cfg!(target_arch = "x86") {
        "i386-linux-gnu"
    } else if cfg!(target_arch = "arm") {
        "arm-linux-gnueabihf"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64-linux-gnu"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "powerpc64le-linux-gnu"
    } else if cfg!(target_arch = "s390x") {
        "s390x-linux-gnu"
    } else {
        std::env::consts::ARCH
    }
}

/// `/usr/lib/<triplet>/mptcp`.
pub fn system_dir() -> PathBuf {
    Path::new("/usr/lib").join(multiarch()).join("mptcp")
}

/// The file name of an extracted embedded copy.
pub fn extracted_name(embedded: &Embedded) -> String {
    format!("libmptcp_preload-{}.so", embedded.id)
}

/// The private directories an embedded copy may be written to, in order.
fn runtime_dirs() -> Vec<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let mut out = Vec::new();
    // Only our own runtime directory (root with a user's XDG_RUNTIME_DIR left in
    // the environment would otherwise write into that user's directory).
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        let ours = std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if dir.is_absolute() && ours {
            out.push(dir.join("mptcp"));
        }
    }
    if uid == 0 {
        out.push(PathBuf::from("/run/mptcp"));
    }
    out.push(std::env::temp_dir().join(format!("mptcp-{uid}")));
    out
}

/// Writes the embedded copy to the first usable private runtime directory (or
/// reuses the identical file already there).
fn extract(embedded: &Embedded) -> Result<Library, Error> {
    let mut tried = Vec::new();
    for dir in runtime_dirs() {
        match extract_into(embedded, &dir) {
            Ok(path) => {
                return Ok(Library {
                    path,
                    origin: Origin::Embedded,
                })
            }
            Err(e) => tried.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(Error::Library(format!(
        "cannot write the embedded {LIBRARY_NAME} to a private directory ({}); name a \
         library with {LIBRARY_VAR}=PATH or use --mode trace",
        tried.join("; ")
    )))
}

/// `dir` made (0700) or checked (ours, a directory, no access for others),
/// then the file written or checked in it.
fn extract_into(embedded: &Embedded, dir: &Path) -> io::Result<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "not a directory of uid {uid} with mode 0700 (uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let path = dir.join(extracted_name(embedded));
    if same_file_content(&path, embedded.bytes, uid) {
        return Ok(path);
    }
    write_atomically(dir, &path, embedded.bytes, 0o500)?;
    Ok(path)
}

/// True when `path` is a regular file of `uid`, writable by no one else, with
/// exactly `bytes` in it.
fn same_file_content(path: &Path, bytes: &[u8], uid: u32) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return false;
    }
    meta.len() == bytes.len() as u64 && std::fs::read(path).is_ok_and(|b| b == bytes)
}

/// A temporary file in `dir`, written and renamed over `path`, so a reader never
/// sees half a library.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("lib"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// For a systemd drop-in: a library on disk ([`find_on_disk`]), else the
/// embedded copy installed as `ROOT/usr/local/lib/mptcp/libmptcp_preload.so`
/// (mode 0644; rewritten when it differs). The returned path is the one the
/// service will see (without `root`).
///
/// # Errors
/// [`Error::Library`] when there is neither, or the copy cannot be written.
pub fn library_for_unit(embedded: Option<&Embedded>, root: &Path) -> Result<Library, Error> {
    if let Some(found) = find_on_disk()? {
        return Ok(found);
    }
    let Some(embedded) = embedded else {
        return Err(not_found());
    };
    install_copy(embedded, root)
}

/// Installs the embedded copy under `root` (see [`library_for_unit`]).
///
/// # Errors
/// [`Error::Library`] when the directory or the file cannot be written.
pub fn install_copy(embedded: &Embedded, root: &Path) -> Result<Library, Error> {
    let dir = root.join(INSTALL_DIR);
    let fail = |e: io::Error| {
        Error::Library(format!(
            "cannot install the embedded {LIBRARY_NAME} in {}: {e}",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(fail)?;
    let path = dir.join(LIBRARY_NAME);
    if std::fs::read(&path).ok().as_deref() != Some(embedded.bytes) {
        write_atomically(&dir, &path, embedded.bytes, 0o644).map_err(fail)?;
    }
    Ok(Library {
        path: Path::new("/").join(INSTALL_DIR).join(LIBRARY_NAME),
        origin: Origin::Installed,
    })
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

    #[test]
    fn the_system_directory_is_debians() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(system_dir(), Path::new("/usr/lib/x86_64-linux-gnu/mptcp"));
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mptcp-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_extracted_copy_is_private_reused_and_repaired() {
        static BYTES: &[u8] = b"\x7fELF not really a library";
        let e = Embedded {
            bytes: BYTES,
            id: "0123456789abcdef",
        };
        let dir = scratch("extract");
        let path = extract_into(&e, &dir).unwrap();
        assert_eq!(path, dir.join("libmptcp_preload-0123456789abcdef.so"));
        assert_eq!(std::fs::read(&path).unwrap(), BYTES);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o500);
        let inode = std::fs::metadata(&path).unwrap().ino();
        // The same bytes: the file is kept.
        extract_into(&e, &dir).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        // Other bytes under the name (tampered with, truncated): rewritten.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"something else").unwrap();
        extract_into(&e, &dir).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), BYTES);
        // A directory others can enter is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = extract_into(&e, &dir).unwrap_err().to_string();
        assert!(err.contains("mode 0700"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_copy_for_units_goes_under_the_root() {
        static BYTES: &[u8] = b"library";
        let e = Embedded {
            bytes: BYTES,
            id: "1",
        };
        let root = scratch("install");
        let lib = install_copy(&e, &root).unwrap();
        assert_eq!(
            lib.path,
            Path::new("/usr/local/lib/mptcp/libmptcp_preload.so")
        );
        let file = root.join("usr/local/lib/mptcp/libmptcp_preload.so");
        assert_eq!(std::fs::read(&file).unwrap(), BYTES);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
