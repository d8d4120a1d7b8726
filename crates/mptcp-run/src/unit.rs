//! A systemd drop-in that runs a service with the preload library:
//! `/etc/systemd/system/NAME.service.d/mptcp.conf`, instead of editing the
//! unit file (which `mptcpize enable` does, dropping the unit's other
//! `Environment=` lines).
//!
//! Limits, said in the file itself: a drop-in's `Environment=` replaces a
//! value the unit sets for the same variable (systemd cannot append), so a
//! unit that sets its own `LD_PRELOAD` or `GODEBUG` loses it; and only the
//! preload way fits a drop-in (trace would need `ExecStart=` rewritten).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::env::{go_digit, ONLY_VAR};
use crate::{Error, Roles};

/// The drop-in's file name inside `NAME.service.d/`.
pub const DROP_IN_NAME: &str = "mptcp.conf";

/// A drop-in to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropIn {
    /// The unit, `NAME.service`.
    pub unit: String,
    /// `ROOT/etc/systemd/system/NAME.service.d/mptcp.conf`.
    pub path: PathBuf,
    /// The file's content.
    pub content: String,
}

/// `NAME` or `NAME.service`, checked, as `NAME.service`.
///
/// # Errors
/// [`Error::Input`] for an empty name, a `/`, or characters systemd does not
/// allow in unit names.
pub fn service_name(name: &str) -> Result<String, Error> {
    let base = name.strip_suffix(".service").unwrap_or(name);
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@');
    if base.is_empty() || base.len() > 240 || !base.chars().all(ok) {
        return Err(Error::Input(format!(
            "{name:?} is not a service name (letters, digits and :-_.\\@ only, e.g. nginx or \
             nginx.service)"
        )));
    }
    Ok(format!("{base}.service"))
}

/// The drop-in's directory for `unit` under `root` (`/` for the real system).
pub fn drop_in_dir(root: &Path, unit: &str) -> PathBuf {
    root.join("etc/systemd/system").join(format!("{unit}.d"))
}

/// The drop-in for `name` with the library at `library`.
///
/// # Errors
/// [`Error::Input`] for a bad name or a library path that is not absolute or
/// holds a character a unit file cannot carry (newline).
pub fn drop_in(name: &str, root: &Path, library: &Path, roles: Roles) -> Result<DropIn, Error> {
    let unit = service_name(name)?;
    let lib = library.to_str().filter(|s| !s.contains(['\n', '\r']));
    let lib = match lib {
        Some(lib) if library.is_absolute() => lib,
        _ => {
            return Err(Error::Input(format!(
                "the library path {} cannot go into a unit file (it must be absolute UTF-8 \
                 on one line)",
                library.display()
            )))
        }
    };
    let mut content = String::new();
    let _ = writeln!(
        content,
        "# Written by `mptcp run --unit {unit}`: the service's TCP sockets use Multipath TCP\n\
         # through the mptcp-preload library. These values replace any the unit sets for\n\
         # the same variables. Undo with `mptcp run --unit {unit} --remove`; either way,\n\
         # then run `systemctl daemon-reload` and restart the service."
    );
    content.push_str("[Service]\n");
    let _ = writeln!(
        content,
        "Environment={}",
        quote(&format!("LD_PRELOAD={lib}"))
    );
    let _ = writeln!(
        content,
        "Environment={}",
        quote(&format!("GODEBUG=multipathtcp={}", go_digit(roles)))
    );
    match roles {
        Roles::Both => {}
        Roles::DialOnly => {
            let _ = writeln!(
                content,
                "Environment={}",
                quote(&format!("{ONLY_VAR}=dial"))
            );
        }
        Roles::ListenOnly => {
            let _ = writeln!(
                content,
                "Environment={}",
                quote(&format!("{ONLY_VAR}=listen"))
            );
        }
    }
    Ok(DropIn {
        path: drop_in_dir(root, &unit).join(DROP_IN_NAME),
        unit,
        content,
    })
}

/// One `Environment=` assignment, double-quoted, with `\`, `"` and systemd's
/// `%` specifier escaped.
fn quote(assignment: &str) -> String {
    let mut out = String::with_capacity(assignment.len() + 2);
    out.push('"');
    for c in assignment.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the drop-in (creating its directory), replacing an earlier one
/// atomically (a temporary file renamed over it).
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write(drop_in: &DropIn) -> Result<(), Error> {
    let dir = drop_in.path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp = dir.join(format!(".{DROP_IN_NAME}.tmp"));
    std::fs::write(&tmp, &drop_in.content)
        .and_then(|()| std::fs::rename(&tmp, &drop_in.path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("cannot write {}", drop_in.path.display()), e)
        })
}

/// Removes `NAME`'s drop-in, and its directory when that leaves it empty.
/// Returns the file removed, or `None` when there was none.
///
/// # Errors
/// [`Error::Input`] for a bad name; [`Error::Io`] when the file exists but
/// cannot be removed.
pub fn remove(name: &str, root: &Path) -> Result<Option<PathBuf>, Error> {
    let unit = service_name(name)?;
    let dir = drop_in_dir(root, &unit);
    let path = dir.join(DROP_IN_NAME);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            // Only if empty: other drop-ins of the unit stay.
            let _ = std::fs::remove_dir(&dir);
            Ok(Some(path))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(service_name("nginx").unwrap(), "nginx.service");
        assert_eq!(service_name("nginx.service").unwrap(), "nginx.service");
        assert_eq!(service_name("getty@tty1").unwrap(), "getty@tty1.service");
        for bad in ["", ".service", "a/b", "../x/", "a b", "a\nb"] {
            assert!(service_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content() {
        let d = drop_in(
            "web",
            Path::new("/r"),
            Path::new("/opt/m%/lib.so"),
            Roles::Both,
        )
        .unwrap();
        assert_eq!(
            d.path,
            Path::new("/r/etc/systemd/system/web.service.d/mptcp.conf")
        );
        assert!(d.content.contains("[Service]\n"));
        assert!(d
            .content
            .contains("Environment=\"LD_PRELOAD=/opt/m%%/lib.so\"\n"));
        assert!(d
            .content
            .contains("Environment=\"GODEBUG=multipathtcp=1\"\n"));
        assert!(!d.content.contains(ONLY_VAR));
        let d = drop_in("web", Path::new("/"), Path::new("/l.so"), Roles::DialOnly).unwrap();
        assert!(d.content.contains("Environment=\"MPTCP_RUN_ONLY=dial\"\n"));
        assert!(d.content.contains("multipathtcp=3"));
        assert!(drop_in("web", Path::new("/"), Path::new("rel.so"), Roles::Both).is_err());
        assert!(drop_in("web", Path::new("/"), Path::new("/a\nb.so"), Roles::Both).is_err());
    }
}
