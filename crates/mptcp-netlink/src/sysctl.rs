//! The `net.mptcp.*` sysctls of the calling thread's network namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so these
//! functions read and write the namespace of the calling thread.
//!
//! ```no_run
//! use mptcp_netlink::sysctl;
//!
//! for (name, value) in sysctl::all()? {
//!     println!("net.mptcp.{name} = {value}");
//! }
//! sysctl::set("path_manager", "userspace")?;
//! assert_eq!(sysctl::get("net.mptcp.path_manager")?, "userspace");
//! # Ok::<(), mptcp_netlink::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// The directory of the MPTCP sysctls.
pub const DIR: &str = "/proc/sys/net/mptcp";

/// The file of sysctl `name`, given as `enabled` or `net.mptcp.enabled`.
fn path(name: &str) -> Result<PathBuf, Error> {
    let short = name
        .strip_prefix("net.mptcp.")
        .or_else(|| name.strip_prefix("net/mptcp/"))
        .unwrap_or(name);
    if short.is_empty()
        || !short
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::Invalid(format!(
            "{name:?} is not an MPTCP sysctl name (like \"enabled\" or \"net.mptcp.enabled\")"
        )));
    }
    Ok(PathBuf::from(DIR).join(short))
}

fn map_err(e: io::Error, name: &str, file: &Path, value: Option<&str>) -> Error {
    let op = if value.is_some() {
        "write sysctl"
    } else {
        "read sysctl"
    };
    match (e.raw_os_error(), value) {
        // Writing a value the kernel does not take: out of range (EINVAL), or an unknown
        // name such as a path manager that does not exist (ENOENT).
        (Some(libc::EINVAL | libc::ENOENT), Some(value)) if file.exists() => {
            return Error::Invalid(format!("the kernel refused {value:?} for net.mptcp.{name}"))
        }
        (Some(libc::EPERM | libc::EACCES), _) => return Error::PermissionDenied { op },
        _ => {}
    }
    if e.kind() == io::ErrorKind::NotFound {
        return Error::NotFound {
            op,
            message: Some(if Path::new(DIR).exists() {
                format!("net.mptcp.{name} does not exist on this kernel")
            } else {
                format!("no {DIR}: kernel without MPTCP")
            }),
        };
    }
    Error::io(
        if value.is_some() {
            "cannot write a net.mptcp sysctl"
        } else {
            "cannot read a net.mptcp sysctl"
        },
        e,
    )
}

/// Reads sysctl `name` (`enabled` or `net.mptcp.enabled`), trimmed.
///
/// # Errors
/// [`Error::NotFound`] for a sysctl this kernel lacks; [`Error::Invalid`] for a bad name.
pub fn get(name: &str) -> Result<String, Error> {
    let p = path(name)?;
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| map_err(e, name, &p, None))
}

/// Writes sysctl `name`.
///
/// # Errors
/// [`Error::PermissionDenied`] without `CAP_NET_ADMIN` in the namespace's user namespace
/// (`EPERM`/`EACCES`); [`Error::Invalid`] for a value the kernel refuses; as
/// [`get`] otherwise.
pub fn set(name: &str, value: &str) -> Result<(), Error> {
    let p = path(name)?;
    std::fs::write(&p, value).map_err(|e| map_err(e, name, &p, Some(value)))
}

/// Every MPTCP sysctl and its value, sorted by name. Unreadable ones are skipped.
///
/// # Errors
/// [`Error::NotFound`] on a kernel without MPTCP.
pub fn all() -> Result<Vec<(String, String)>, Error> {
    let dir = std::fs::read_dir(DIR).map_err(|e| map_err(e, "*", Path::new(DIR), None))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(value) = std::fs::read_to_string(entry.path()) {
            out.push((name, value.trim().to_string()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            path("enabled").unwrap(),
            PathBuf::from("/proc/sys/net/mptcp/enabled")
        );
        assert_eq!(
            path("net.mptcp.path_manager").unwrap(),
            PathBuf::from("/proc/sys/net/mptcp/path_manager")
        );
        for bad in ["", "../../kernel/hostname", "a/b", "Enabled", "net.mptcp."] {
            assert!(matches!(path(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }
}
