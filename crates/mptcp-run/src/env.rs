//! The environment a program runs with under `mptcp run`: a pure function of
//! the current values, so it is tested without running anything.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::Roles;

/// The variable the preload library reads for [`Roles`] (`dial`, `listen`).
pub const ONLY_VAR: &str = "MPTCP_RUN_ONLY";
/// The variable that turns on the preload library's debug lines on stderr.
pub const DEBUG_VAR: &str = "MPTCP_RUN_DEBUG";

/// One change to the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvChange {
    /// Set the variable to the value.
    Set(&'static str, OsString),
    /// Remove the variable.
    Remove(&'static str),
}

/// Go's `GODEBUG=multipathtcp` digit for `roles`: 1 both, 2 listeners only,
/// 3 dialers only.
pub fn go_digit(roles: Roles) -> char {
    match roles {
        Roles::Both => '1',
        Roles::ListenOnly => '2',
        Roles::DialOnly => '3',
    }
}

/// The changes for a run: `GODEBUG` gains `multipathtcp=N` unless it already
/// mentions `multipathtcp` (the user's word wins); with a `library`,
/// `LD_PRELOAD` gains it at the end (kept once); `MPTCP_RUN_ONLY` says the
/// roles (removed for both, so an outer value does not leak in).
pub fn changes(
    roles: Roles,
    library: Option<&Path>,
    get: impl Fn(&str) -> Option<OsString>,
) -> Vec<EnvChange> {
    let mut out = Vec::new();
    let godebug = get("GODEBUG").unwrap_or_default();
    if !contains(godebug.as_bytes(), b"multipathtcp") {
        let mut value = godebug.into_vec();
        if !value.is_empty() {
            value.push(b',');
        }
        value.extend_from_slice(format!("multipathtcp={}", go_digit(roles)).as_bytes());
        out.push(EnvChange::Set("GODEBUG", OsString::from_vec(value)));
    }
    if let Some(library) = library {
        let current = get("LD_PRELOAD").unwrap_or_default();
        let present = current
            .as_bytes()
            .split(|&b| b == b':' || b == b' ')
            .any(|item| OsStr::from_bytes(item) == library.as_os_str());
        if !present {
            let mut value = current.into_vec();
            if !value.is_empty() {
                value.push(b':');
            }
            value.extend_from_slice(library.as_os_str().as_bytes());
            out.push(EnvChange::Set("LD_PRELOAD", OsString::from_vec(value)));
        }
    }
    match roles {
        Roles::Both => out.push(EnvChange::Remove(ONLY_VAR)),
        Roles::DialOnly => out.push(EnvChange::Set(ONLY_VAR, "dial".into())),
        Roles::ListenOnly => out.push(EnvChange::Set(ONLY_VAR, "listen".into())),
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Applies `changes` to a command.
pub fn apply(command: &mut std::process::Command, changes: &[EnvChange]) {
    for change in changes {
        match change {
            EnvChange::Set(k, v) => command.env(k, v),
            EnvChange::Remove(k) => command.env_remove(k),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn godebug_is_added_unless_mentioned() {
        let lib = Path::new("/x/libmptcp_preload.so");
        let c = changes(Roles::Both, Some(lib), env(&[]));
        assert!(c.contains(&EnvChange::Set("GODEBUG", "multipathtcp=1".into())));
        assert!(c.contains(&EnvChange::Set("LD_PRELOAD", lib.into())));
        assert!(c.contains(&EnvChange::Remove(ONLY_VAR)));

        let c = changes(Roles::Both, None, env(&[("GODEBUG", "http2client=0")]));
        assert!(c.contains(&EnvChange::Set(
            "GODEBUG",
            "http2client=0,multipathtcp=1".into()
        )));
        assert!(!c
            .iter()
            .any(|c| matches!(c, EnvChange::Set("LD_PRELOAD", _))));

        let c = changes(Roles::DialOnly, None, env(&[("GODEBUG", "multipathtcp=0")]));
        assert!(!c.iter().any(|c| matches!(c, EnvChange::Set("GODEBUG", _))));
        assert!(c.contains(&EnvChange::Set(ONLY_VAR, "dial".into())));

        let c = changes(Roles::ListenOnly, None, env(&[]));
        assert!(c.contains(&EnvChange::Set("GODEBUG", "multipathtcp=2".into())));
        let c = changes(Roles::DialOnly, None, env(&[]));
        assert!(c.contains(&EnvChange::Set("GODEBUG", "multipathtcp=3".into())));
    }

    #[test]
    fn ld_preload_is_appended_once() {
        let lib = Path::new("/x/libmptcp_preload.so");
        let c = changes(
            Roles::Both,
            Some(lib),
            env(&[("LD_PRELOAD", "/a.so /b.so")]),
        );
        assert!(c.contains(&EnvChange::Set(
            "LD_PRELOAD",
            "/a.so /b.so:/x/libmptcp_preload.so".into()
        )));
        let c = changes(
            Roles::Both,
            Some(lib),
            env(&[("LD_PRELOAD", "/a.so:/x/libmptcp_preload.so")]),
        );
        assert!(!c
            .iter()
            .any(|c| matches!(c, EnvChange::Set("LD_PRELOAD", _))));
    }
}
