//! `mptcp run`: run a program with its TCP sockets made MPTCP
//! ([`mptcp_run`]), or write a systemd drop-in for a service.
//!
//! JSON (`--check`): `{"program", "mode", "reason", "warnings", "library",
//! "library_origin", "linkage", "interpreter", "go", "secure"}`; (`--unit`):
//! `{"unit", "path", "action": "written"|"removed"|"absent", "content", "library",
//! "library_origin"}`. A program's own run
//! prints nothing of ours on stdout.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mptcp_run::exe::Linkage;
use mptcp_run::{unit, Outcome, Requested, Roles};
use serde::Serialize;

use crate::error::{self, Error, EXIT_OK};
use crate::output::Output;

pub const RUN_HELP: &str = "\
Ways (--mode):
  preload  LD_PRELOAD of libmptcp_preload.so: wraps libc's socket() and setsockopt(); an option MPTCP
           refuses (TCP_USER_TIMEOUT, ...) turns the socket into TCP instead of failing.
           mptcp run execs the program. Cannot reach static binaries, Go (raw system
           calls: only GODEBUG=multipathtcp=1 helps), set-ID programs.
  trace    a seccomp filter stops the program at each TCP socket() and mptcp run (its
           ptrace supervisor) rewrites the protocol to MPTCP: reaches static binaries
           and Go. Follows forks and execs; swaps to TCP for the options Linux 6.18
           refuses and for --dial-only/--listen-only, as preload does; no debugger can
           attach meanwhile; x86_64 only.
  auto     preload for dynamically linked programs, trace for static ones (no
           PT_INTERP) and set-ID ones. --check says which and why.
Both set GODEBUG=multipathtcp=1 (2 with --listen-only, 3 with --dial-only) unless
GODEBUG already mentions multipathtcp. MPTCP_RUN_DEBUG=1 makes the library say what it
does on stderr.

The preload library, first found: MPTCP_PRELOAD_LIB=PATH; next to the mptcp binary (or
in ../lib/mptcp/ beside it); /usr/lib/<triplet>/mptcp/ (the Debian package's); else the
copy embedded in this binary, written once to a private directory ($XDG_RUNTIME_DIR/mptcp,
/run/mptcp for root, or $TMPDIR/mptcp-UID). --check and -v say which; `mptcp doctor` too.
--unit with only the embedded copy installs it as /usr/local/lib/mptcp/libmptcp_preload.so.

Exit status: the program's; killed by a signal, mptcp run ends by the same signal (a
shell shows 128+N). 127 PROGRAM not found, 126 not executable, 2 mptcp run's own error.

JSON (--json): with --check {\"program\", \"mode\", \"reason\", \"warnings\", \"library\",
\"library_origin\": \"variable\"|\"beside\"|\"system\"|\"embedded\", \"linkage\": \"dynamic\"|\"static\"|\"unknown\", \"interpreter\", \"go\", \"secure\"}; with --unit
{\"unit\", \"path\", \"action\": \"written\"|\"removed\"|\"absent\", \"content\", \"library\",
\"library_origin\"}. Fields without a
value are left out. A program's run prints nothing of mptcp's on stdout.

Examples:
  mptcp run -- curl http://198.18.0.2/
  mptcp run --check -- ./server
  mptcp run --mode trace -- ./static-client 198.18.0.2 80
  mptcp run --dial-only -- python3 app.py
  mptcp run --unit nginx               as root; then: systemctl daemon-reload; systemctl restart nginx
  mptcp run --unit nginx --remove";

/// `mptcp run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How to reach the program.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Only dials use MPTCP: a socket that listens becomes TCP.
    #[arg(long, conflicts_with = "listen_only")]
    pub dial_only: bool,
    /// Only listeners use MPTCP: a socket that connects becomes TCP.
    #[arg(long)]
    pub listen_only: bool,
    /// Say which mode would be used for PROGRAM and why; run nothing.
    #[arg(long)]
    pub check: bool,
    /// Write a systemd drop-in (NAME.service.d/mptcp.conf) that runs the service NAME
    /// with the preload library, instead of running a program. The unit file is not
    /// touched.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["check", "command"])]
    pub unit: Option<String>,
    /// With --unit: remove the drop-in instead.
    #[arg(long, requires = "unit", conflicts_with = "command")]
    pub remove: bool,
    /// With --unit: the root directory the drop-in goes under (default /).
    #[arg(
        long,
        value_name = "DIR",
        requires = "unit",
        conflicts_with = "command"
    )]
    pub root: Option<PathBuf>,
    /// The program and its arguments (after `--`).
    #[arg(
        value_name = "PROGRAM",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "unit",
        num_args = 1..
    )]
    pub command: Vec<OsString>,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Preload for dynamic programs, trace for static and set-ID ones.
    Auto,
    /// LD_PRELOAD of the socket()/setsockopt() wrapper.
    Preload,
    /// seccomp + ptrace supervisor.
    Trace,
}

impl RunArgs {
    fn requested(&self) -> Requested {
        match self.mode {
            ModeArg::Auto => Requested::Auto,
            ModeArg::Preload => Requested::Preload,
            ModeArg::Trace => Requested::Trace,
        }
    }

    fn roles(&self) -> Roles {
        match (self.dial_only, self.listen_only) {
            (true, _) => Roles::DialOnly,
            (_, true) => Roles::ListenOnly,
            _ => Roles::Both,
        }
    }
}

#[derive(Serialize)]
struct CheckJson {
    program: String,
    mode: String,
    reason: String,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    library: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    library_origin: Option<&'static str>,
    linkage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
    go: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure: Option<String>,
}

#[derive(Serialize)]
struct UnitJson {
    unit: String,
    path: String,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    library: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    library_origin: Option<&'static str>,
}

/// Runs `mptcp run`.
pub fn run(args: &RunArgs, out: &Output) -> Result<u8, Error> {
    if let Some(name) = &args.unit {
        return write_unit(args, name, out);
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Error::msg(
            "name the program to run: mptcp run -- PROGRAM [ARGS...]",
        ));
    };
    let plan = match mptcp_run::plan(
        program,
        args.requested(),
        crate::preload::embedded().as_ref(),
    ) {
        Ok(plan) => plan,
        Err(e) => return run_error(e),
    };
    if args.check {
        return check(&plan, out);
    }
    for warning in &plan.choice.warnings {
        eprintln!("mptcp run: warning: {warning}");
    }
    tracing::info!(mode = %plan.choice.mode, reason = %plan.choice.reason, "mptcp run");
    if let Some(lib) = &plan.library {
        tracing::info!(library = %lib.path.display(), origin = %lib.origin, "preload library");
    }
    match mptcp_run::run(&plan, program, rest, args.roles()) {
        Ok(Outcome::Exited(code)) => Ok(u8::try_from(code).unwrap_or(u8::MAX)),
        Ok(outcome @ Outcome::Signaled(signal)) => {
            mptcp_run::reraise(signal);
            Ok(u8::try_from(outcome.shell_status()).unwrap_or(u8::MAX))
        }
        Err(e) => run_error(e),
    }
}

/// Not found (127) and not executable (126) as a shell says them; the rest
/// as every mptcp error (status 2).
fn run_error(e: mptcp_run::Error) -> Result<u8, Error> {
    match e.shell_status() {
        Some(status) => {
            error::report(&e.to_string());
            Ok(status)
        }
        None => Err(Error::msg(e)),
    }
}

fn check(plan: &mptcp_run::Plan, out: &Output) -> Result<u8, Error> {
    let p = &plan.program;
    let (linkage, interpreter) = match &p.linkage {
        Linkage::Dynamic { interpreter } => ("dynamic", Some(interpreter.clone())),
        Linkage::Static => ("static", None),
        Linkage::Unknown { .. } => ("unknown", None),
    };
    let json = CheckJson {
        program: p.path.display().to_string(),
        mode: plan.choice.mode.to_string(),
        reason: plan.choice.reason.clone(),
        warnings: plan.choice.warnings.clone(),
        library: plan.library.as_ref().map(|l| l.path.display().to_string()),
        library_origin: plan.library.as_ref().map(|l| l.origin.name()),
        linkage,
        interpreter,
        go: p.go,
        secure: p.secure.map(|s| s.to_string()),
    };
    if out.json {
        out.json(&json)?;
        return Ok(EXIT_OK);
    }
    let mut text = format!(
        "program: {}\nmode:    {}\nwhy:     {}\n",
        json.program, json.mode, json.reason
    );
    for interp in &p.interpreters {
        text.push_str(&format!("script:  runs {}\n", interp.display()));
    }
    if let Some(lib) = &plan.library {
        text.push_str(&format!(
            "library: {} ({})\n",
            lib.path.display(),
            lib.origin
        ));
    }
    for w in &json.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    out.print(&text)?;
    Ok(EXIT_OK)
}

fn write_unit(args: &RunArgs, name: &str, out: &Output) -> Result<u8, Error> {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let unit_name = unit::service_name(name).map_err(Error::msg)?;
    let json = if args.remove {
        let removed = unit::remove(name, &root).map_err(Error::msg)?;
        let path = removed
            .clone()
            .unwrap_or_else(|| unit::drop_in_dir(&root, &unit_name).join(unit::DROP_IN_NAME));
        UnitJson {
            unit: unit_name,
            path: path.display().to_string(),
            action: if removed.is_some() {
                "removed"
            } else {
                "absent"
            },
            content: None,
            library: None,
            library_origin: None,
        }
    } else {
        let library =
            mptcp_run::preload::library_for_unit(crate::preload::embedded().as_ref(), &root)
                .map_err(Error::msg)?;
        let drop_in =
            unit::drop_in(name, &root, &library.path, args.roles()).map_err(Error::msg)?;
        unit::write(&drop_in).map_err(Error::msg)?;
        UnitJson {
            unit: drop_in.unit,
            path: drop_in.path.display().to_string(),
            action: "written",
            content: Some(drop_in.content),
            library: Some(library.path.display().to_string()),
            library_origin: Some(library.origin.name()),
        }
    };
    if out.json {
        out.json(&json)?;
    } else {
        let text = match json.action {
            "written" => format!(
                "wrote {}\nnext: systemctl daemon-reload && systemctl restart {}",
                json.path, json.unit
            ),
            "removed" => format!(
                "removed {}\nnext: systemctl daemon-reload && systemctl restart {}",
                json.path, json.unit
            ),
            _ => format!("no drop-in at {}: nothing to remove", json.path),
        };
        out.print(&format!("{text}\n"))?;
    }
    Ok(EXIT_OK)
}
