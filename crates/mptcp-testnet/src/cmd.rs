//! Finding and running the external programs (iproute2, iptables) this crate drives.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Error;

/// Where root's tools live on Debian-like systems, searched after `$PATH` because a
/// non-login root shell may not have the `sbin` directories in it.
const SBIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of `tool`, from `$PATH` and then the usual `sbin` directories.
pub(crate) fn find_tool(tool: &str) -> Result<PathBuf, Error> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::missing_tool(tool))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A [`Command`] for `tool`, resolved to its full path.
pub(crate) fn command(tool: &str) -> Result<Command, Error> {
    Ok(Command::new(find_tool(tool)?))
}

/// Runs `tool args...`; a non-zero exit is an [`Error::Command`] carrying its stderr.
pub(crate) fn run<I, S>(tool: &str, args: I) -> Result<Output, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(tool)?;
    cmd.args(args);
    output(&mut cmd)
}

/// Runs a prepared command and checks its exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, Error> {
    let line = command_line(cmd);
    tracing::debug!(command = %line, "running");
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let program = Path::new(cmd.get_program())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Error::missing_tool(&program)
        } else {
            Error::io(format!("cannot start `{line}`"), e)
        }
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: line,
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The command as a shell-like line, for logs and error messages.
pub(crate) fn command_line(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program());
    std::iter::once(program)
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_named() {
        let err = find_tool("surely-not-a-real-tool-xyz").unwrap_err();
        assert!(
            err.to_string().contains("surely-not-a-real-tool-xyz"),
            "{err}"
        );
    }

    #[test]
    fn failing_command_reports_status_and_stderr() {
        let err = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        match err {
            Error::Command {
                command,
                status,
                stderr,
            } => {
                assert_eq!(command, "sh -c echo oops >&2; exit 3");
                assert_eq!(status, Some(3));
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
}
