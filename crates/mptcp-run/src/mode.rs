//! Which way to reach a program: a pure choice from what [`crate::exe`]
//! found, with the reason `mptcp run --check` prints.

use std::fmt;

use crate::exe::{Linkage, Program};

/// How `mptcp run` makes a program's sockets MPTCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `LD_PRELOAD` of `libmptcp_preload.so`: wraps libc's `socket()` and
    /// `setsockopt()`; keeps refused options working (swap to TCP). Reaches
    /// dynamically linked programs that call libc.
    Preload,
    /// A seccomp filter and a ptrace supervisor rewriting `socket()`'s
    /// protocol argument: reaches static binaries and raw system calls.
    Trace,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Preload => "preload",
            Mode::Trace => "trace",
        })
    }
}

/// What the user asked for with `--mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Requested {
    /// Preload for dynamic programs; trace for static ones and set-ID ones.
    #[default]
    Auto,
    /// Always preload (warns when it cannot reach the program).
    Preload,
    /// Always trace.
    Trace,
}

/// The mode chosen, why, and what the user should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The mode.
    pub mode: Mode,
    /// Why, in one sentence.
    pub reason: String,
    /// Things that will not work as hoped (printed as warnings).
    pub warnings: Vec<String>,
}

const GO_NOTE: &str = "Go makes its sockets with raw system calls, which the preload library \
                       cannot see: only GODEBUG=multipathtcp (set by mptcp run) converts its \
                       default dialers and listeners, not a Dialer that turns MPTCP off; \
                       --mode trace converts every socket";

/// Chooses the mode for `program`. `root`: this process runs as root (a
/// set-ID program keeps its privileges under trace only then).
pub fn choose(requested: Requested, program: &Program, root: bool) -> Choice {
    let name = program.path.display();
    let unreachable = preload_cannot_reach(program);
    let mut warnings = Vec::new();
    if program.elf32 {
        warnings.push(format!(
            "{name} is a 32-bit program: the preload library is 64-bit and the trace filter \
             watches 64-bit system calls only, so its sockets stay TCP"
        ));
    }
    match requested {
        Requested::Trace => {
            if let (Some(secure), false) = (program.secure, root) {
                warnings.push(format!(
                    "{name} is {secure}: traced by an unprivileged supervisor, the kernel runs \
                     it without its extra privileges"
                ));
            }
            Choice {
                mode: Mode::Trace,
                reason: "asked for with --mode trace".into(),
                warnings,
            }
        }
        Requested::Preload => {
            match (&unreachable, program.go) {
                (Some(why), _) => warnings.push(format!(
                    "preload cannot reach {name}: {why}; its sockets stay TCP (use --mode \
                     trace, or auto)"
                )),
                (None, true) => warnings.push(format!("{name} is a Go program: {GO_NOTE}")),
                (None, false) => {}
            }
            Choice {
                mode: Mode::Preload,
                reason: "asked for with --mode preload".into(),
                warnings,
            }
        }
        Requested::Auto => {
            if let Some(why) = unreachable {
                if let (Some(secure), false) = (program.secure, root) {
                    warnings.push(format!(
                        "{name} is {secure}: traced by an unprivileged supervisor, the kernel \
                         runs it without its extra privileges"
                    ));
                }
                return Choice {
                    mode: Mode::Trace,
                    reason: format!("{why}; trace reaches it"),
                    warnings,
                };
            }
            let reason = match &program.linkage {
                Linkage::Dynamic { interpreter } if program.go => {
                    warnings.push(format!("{name} is a Go program: {GO_NOTE}"));
                    format!("dynamically linked (PT_INTERP {interpreter}), a Go program")
                }
                Linkage::Dynamic { interpreter } => format!(
                    "dynamically linked (PT_INTERP {interpreter}): the preload library wraps \
                     socket() and keeps options MPTCP refuses working"
                ),
                Linkage::Unknown { why } => format!(
                    "cannot tell how it is linked ({why}); preload, which reaches the dynamic \
                     programs it runs"
                ),
                Linkage::Static => unreachable!("static programs are unreachable by preload"),
            };
            Choice {
                mode: Mode::Preload,
                reason,
                warnings,
            }
        }
    }
}

/// Why `LD_PRELOAD` cannot reach `program`, if it cannot.
fn preload_cannot_reach(program: &Program) -> Option<String> {
    if program.linkage == Linkage::Static {
        let go = if program.go { " Go" } else { "" };
        return Some(format!(
            "it is a statically linked{go} program (no PT_INTERP): no dynamic loader runs, so \
             LD_PRELOAD is never read"
        ));
    }
    program.secure.map(|secure| {
        format!("it is {secure}: the loader ignores LD_PRELOAD in secure-execution mode")
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::exe::SecureExec;

    fn program(linkage: Linkage, go: bool, secure: Option<SecureExec>) -> Program {
        Program {
            path: PathBuf::from("/usr/bin/x"),
            interpreters: Vec::new(),
            linkage,
            go,
            secure,
            elf32: false,
        }
    }

    fn dynamic() -> Linkage {
        Linkage::Dynamic {
            interpreter: "/lib64/ld-linux-x86-64.so.2".into(),
        }
    }

    #[test]
    fn auto_prefers_preload_and_traces_what_it_cannot_reach() {
        let c = choose(Requested::Auto, &program(dynamic(), false, None), false);
        assert_eq!(c.mode, Mode::Preload);
        assert!(c.reason.contains("PT_INTERP"), "{}", c.reason);
        assert!(c.warnings.is_empty());

        let c = choose(
            Requested::Auto,
            &program(Linkage::Static, false, None),
            false,
        );
        assert_eq!(c.mode, Mode::Trace);
        assert!(c.reason.contains("statically linked"), "{}", c.reason);

        let c = choose(Requested::Auto, &program(Linkage::Static, true, None), true);
        assert_eq!(c.mode, Mode::Trace);
        assert!(c.reason.contains("statically linked Go"), "{}", c.reason);

        let setuid = program(dynamic(), false, Some(SecureExec::Setuid));
        let c = choose(Requested::Auto, &setuid, false);
        assert_eq!(c.mode, Mode::Trace);
        assert!(c.reason.contains("set-user-ID"), "{}", c.reason);
        assert!(c.warnings[0].contains("without its extra privileges"));
        let c = choose(Requested::Auto, &setuid, true);
        assert_eq!(c.mode, Mode::Trace);
        assert!(c.warnings.is_empty());

        let c = choose(Requested::Auto, &program(dynamic(), true, None), false);
        assert_eq!(c.mode, Mode::Preload);
        assert!(c.warnings[0].contains("GODEBUG"), "{:?}", c.warnings);

        let unknown = Linkage::Unknown { why: "x".into() };
        assert_eq!(
            choose(Requested::Auto, &program(unknown, false, None), false).mode,
            Mode::Preload
        );
    }

    #[test]
    fn forced_preload_says_when_it_cannot_reach() {
        let c = choose(
            Requested::Preload,
            &program(Linkage::Static, true, None),
            false,
        );
        assert_eq!(c.mode, Mode::Preload);
        assert!(
            c.warnings[0].contains("preload cannot reach"),
            "{:?}",
            c.warnings
        );
        let c = choose(Requested::Preload, &program(dynamic(), false, None), false);
        assert!(c.warnings.is_empty());
        let c = choose(Requested::Trace, &program(dynamic(), false, None), false);
        assert_eq!(c.mode, Mode::Trace);
        let mut p32 = program(dynamic(), false, None);
        p32.elf32 = true;
        let c = choose(Requested::Auto, &p32, false);
        assert!(c.warnings[0].contains("32-bit"), "{:?}", c.warnings);
    }
}
