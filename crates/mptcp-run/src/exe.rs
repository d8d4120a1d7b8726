//! What kind of program is about to run: found on `PATH` as `execvp` would,
//! scripts followed to their interpreter, and the ELF file read for how it is
//! linked (`PT_INTERP`), whether it is Go, and whether the kernel will run it
//! in secure-execution mode (setuid, setgid, file capabilities), where
//! `ld.so` ignores `LD_PRELOAD`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// How many `#!` interpreters are followed (the kernel allows 4 levels too).
const MAX_SCRIPT_DEPTH: usize = 4;

/// The program `mptcp run` was asked to run, inspected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The file found (on `PATH` when the name has no `/`).
    pub path: PathBuf,
    /// For a `#!` script, the interpreters it leads to, outermost first; the
    /// rest of this struct describes the last one (the ELF file that runs).
    pub interpreters: Vec<PathBuf>,
    /// How the ELF file that runs is linked.
    pub linkage: Linkage,
    /// The Go toolchain built it (it has a `.go.buildinfo` section or a Go
    /// build-id note): Go makes its sockets with raw system calls.
    pub go: bool,
    /// Why the kernel will run it in secure-execution mode, if it will.
    pub secure: Option<SecureExec>,
    /// A 32-bit ELF file (neither way reaches it on a 64-bit system).
    pub elf32: bool,
}

/// How an ELF program is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// It names a dynamic loader (`PT_INTERP`), which honours `LD_PRELOAD`.
    Dynamic {
        /// The loader, e.g. `/lib64/ld-linux-x86-64.so.2`.
        interpreter: String,
    },
    /// No `PT_INTERP`: no loader runs (static, static-pie).
    Static,
    /// Not an ELF file (or not one this tool reads), or unreadable: `why`.
    Unknown {
        /// What was wrong.
        why: String,
    },
}

/// Why a program runs in secure-execution mode (`AT_SECURE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureExec {
    /// Set-user-ID to another user.
    Setuid,
    /// Set-group-ID to another group.
    Setgid,
    /// File capabilities (`security.capability`).
    Capabilities,
}

impl fmt::Display for SecureExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecureExec::Setuid => "set-user-ID",
            SecureExec::Setgid => "set-group-ID",
            SecureExec::Capabilities => "has file capabilities",
        })
    }
}

/// Finds `name` as `execvp` would and inspects it.
///
/// # Errors
/// [`Error::NotFound`] when there is no such executable file.
pub fn inspect(name: &OsStr) -> Result<Program, Error> {
    let path = find(name, std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        let given = Path::new(name);
        if name.as_bytes().contains(&b'/') && given.exists() {
            // A shell says "Permission denied" (126) for a file it cannot run.
            Error::CannotExecute {
                program: name.to_os_string(),
                source: std::io::Error::from_raw_os_error(libc::EACCES),
            }
        } else {
            Error::NotFound(name.to_os_string())
        }
    })?;
    let mut interpreters = Vec::new();
    let mut file = path.clone();
    loop {
        match read_head(&file) {
            Ok(head) if head.starts_with(b"#!") && interpreters.len() < MAX_SCRIPT_DEPTH => {
                match shebang(&head) {
                    Some(interp) => {
                        file = PathBuf::from(interp);
                        interpreters.push(file.clone());
                    }
                    None => return Ok(unknown(path, interpreters, "a #! line names nothing")),
                }
            }
            Ok(_) => break,
            Err(e) => {
                let why = format!("cannot read {}: {e}", file.display());
                return Ok(unknown(path, interpreters, &why));
            }
        }
    }
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) => {
            let why = format!("cannot read {}: {e}", file.display());
            return Ok(unknown(path, interpreters, &why));
        }
    };
    let (linkage, go) = elf_facts(&bytes);
    // EI_CLASS: 1 for 32-bit ELF files.
    let elf32 = bytes.get(4) == Some(&1) && !matches!(linkage, Linkage::Unknown { .. });
    let secure = secure_exec(&file);
    Ok(Program {
        path,
        interpreters,
        linkage,
        go,
        secure,
        elf32,
    })
}

fn unknown(path: PathBuf, interpreters: Vec<PathBuf>, why: &str) -> Program {
    Program {
        path,
        interpreters,
        linkage: Linkage::Unknown {
            why: why.to_string(),
        },
        go: false,
        secure: None,
        elf32: false,
    }
}

/// `execvp`'s search: a name with a `/` is taken as it is; otherwise each
/// `PATH` entry (an empty one is the current directory; unset `PATH` is
/// `/usr/local/bin:/usr/bin:/bin`) for a regular file with an execute bit.
pub fn find(name: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let default = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let path_var = path_var.unwrap_or(&default);
    path_var
        .as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            Path::new(OsStr::from_bytes(dir)).join(name)
        })
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn read_head(p: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(p)?.take(256).read_to_end(&mut head)?;
    Ok(head)
}

/// The interpreter a `#!` line names (its first word), if any.
pub fn shebang(head: &[u8]) -> Option<&OsStr> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    line.split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())
        .map(OsStr::from_bytes)
}

/// How the ELF image in `bytes` is linked, and whether Go built it.
pub fn elf_facts(bytes: &[u8]) -> (Linkage, bool) {
    let elf = match goblin::elf::Elf::parse(bytes) {
        Ok(elf) => elf,
        Err(e) => {
            return (
                Linkage::Unknown {
                    why: format!("not an ELF file this tool can read ({e})"),
                },
                false,
            )
        }
    };
    let go = elf.section_headers.iter().any(|sh| {
        matches!(
            elf.shdr_strtab.get_at(sh.sh_name),
            Some(".go.buildinfo" | ".note.go.buildid")
        )
    });
    let linkage = match elf.interpreter {
        Some(interpreter) => Linkage::Dynamic {
            interpreter: interpreter.to_string(),
        },
        None => Linkage::Static,
    };
    (linkage, go)
}

/// Whether running `file` as this process's effective ids would be a
/// secure execution, in which the loader ignores `LD_PRELOAD`.
fn secure_exec(file: &Path) -> Option<SecureExec> {
    let meta = std::fs::metadata(file).ok()?;
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    secure_exec_of(meta.mode(), meta.uid(), meta.gid(), euid, egid).or_else(|| {
        let mut buf = [0u8; 64];
        rustix::fs::getxattr(file, "security.capability", &mut buf[..])
            .ok()
            .filter(|&n| n > 0)
            .map(|_| SecureExec::Capabilities)
    })
}

/// Whether set-ID bits in `mode` would change an id for a process with
/// effective ids `euid`/`egid` (file capabilities are checked apart).
pub fn secure_exec_of(mode: u32, uid: u32, gid: u32, euid: u32, egid: u32) -> Option<SecureExec> {
    if mode & libc::S_ISUID != 0 && uid != euid {
        Some(SecureExec::Setuid)
    } else if mode & libc::S_ISGID != 0 && mode & libc::S_IXGRP != 0 && gid != egid {
        // Set-group-ID without group execute is mandatory locking, not set-ID.
        Some(SecureExec::Setgid)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some(OsStr::new("/bin/sh")));
        assert_eq!(
            shebang(b"#! /usr/bin/env python3\n"),
            Some(OsStr::new("/usr/bin/env"))
        );
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
    }

    #[test]
    fn set_id_bits() {
        let suid = 0o104755;
        assert_eq!(
            secure_exec_of(suid, 0, 0, 1000, 1000),
            Some(SecureExec::Setuid)
        );
        assert_eq!(
            secure_exec_of(suid, 0, 0, 0, 0),
            None,
            "root running setuid-root"
        );
        assert_eq!(
            secure_exec_of(0o102755, 0, 50, 0, 0),
            Some(SecureExec::Setgid)
        );
        assert_eq!(
            secure_exec_of(0o102745, 0, 50, 0, 0),
            None,
            "mandatory locking"
        );
        assert_eq!(secure_exec_of(0o100755, 0, 0, 1000, 1000), None);
    }

    #[test]
    fn path_search() {
        let sh = find(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        );
        assert!(sh.is_some_and(|p| p.ends_with("sh")));
        assert_eq!(
            find(OsStr::new("sh"), Some(OsStr::new("/nonexistent"))),
            None
        );
        assert_eq!(find(OsStr::new(""), None), None);
        assert_eq!(find(OsStr::new("/nonexistent/x"), None), None);
    }

    #[test]
    fn garbage_is_not_elf() {
        let (linkage, go) = elf_facts(b"\x7fELF but not really");
        assert!(matches!(linkage, Linkage::Unknown { .. }), "{linkage:?}");
        assert!(!go);
        assert!(matches!(elf_facts(b"").0, Linkage::Unknown { .. }));
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(elf_facts(&me).0, Linkage::Dynamic { .. }));
    }
}
