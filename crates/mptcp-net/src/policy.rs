//! The process-wide default: the `MPTCP_NET` environment variable.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that sets the process-wide default, read once.
///
/// | value | listeners | dialers |
/// |---|---|---|
/// | `0`, `off`, `false`, `none` | TCP | TCP |
/// | `1`, `on`, `true`, `both` | MPTCP | MPTCP |
/// | `2`, `listen`, `listener`, `listeners` | MPTCP | TCP |
/// | `3`, `dial`, `dialer`, `dialers` | TCP | MPTCP |
/// | unset or empty | MPTCP | MPTCP |
///
/// The digits mean what they mean in Go's `GODEBUG=multipathtcp=N`. Words are
/// case-insensitive. Any other value is reported once as a `tracing` warning
/// and ignored (the built-in default applies).
pub const ENV_VAR: &str = "MPTCP_NET";

/// The resolved process-wide default, from [`ENV_VAR`] or built in.
///
/// The built-in default is MPTCP for both listeners and dialers. Go chose
/// listeners only (since Go 1.24) because every Go program gets its default
/// whether it asked for MPTCP or not; a Rust program that links this crate
/// asked for MPTCP, and falling back to TCP costs nothing when the peer or the
/// path does not speak it.
///
/// ```
/// let default = mptcp_net::process_default();
/// println!("listeners: {}, dialers: {}", default.listeners, default.dialers);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessDefault {
    /// Whether `ListenConfig`s that were not told otherwise use MPTCP.
    pub listeners: bool,
    /// Whether `Dialer`s that were not told otherwise use MPTCP.
    pub dialers: bool,
    /// Where the values came from.
    pub source: PolicySource,
}

/// Where [`ProcessDefault`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicySource {
    /// [`ENV_VAR`] was unset or empty.
    BuiltIn,
    /// [`ENV_VAR`] held this recognised value.
    Environment(String),
    /// [`ENV_VAR`] held this value, which was not understood and was ignored.
    Ignored(String),
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::BuiltIn => write!(f, "built-in default ({ENV_VAR} unset)"),
            PolicySource::Environment(v) => write!(f, "{ENV_VAR}={v}"),
            PolicySource::Ignored(v) => write!(f, "built-in default ({ENV_VAR}={v:?} ignored)"),
        }
    }
}

/// The process-wide default for objects whose policy was not set.
///
/// Reads [`ENV_VAR`] on the first call (from any `Dialer` or `ListenConfig`,
/// or directly) and never again: changing the variable later has no effect,
/// as with Go's `GODEBUG`.
pub fn process_default() -> &'static ProcessDefault {
    static DEFAULT: OnceLock<ProcessDefault> = OnceLock::new();
    DEFAULT.get_or_init(|| from_env_value(std::env::var(ENV_VAR).ok().as_deref()))
}

fn from_env_value(value: Option<&str>) -> ProcessDefault {
    let built_in = |source| ProcessDefault {
        listeners: true,
        dialers: true,
        source,
    };
    let raw = match value {
        None => return built_in(PolicySource::BuiltIn),
        Some(v) if v.trim().is_empty() => return built_in(PolicySource::BuiltIn),
        Some(v) => v,
    };
    match parse(raw) {
        Some((listeners, dialers)) => ProcessDefault {
            listeners,
            dialers,
            source: PolicySource::Environment(raw.to_owned()),
        },
        None => {
            tracing::warn!(
                value = raw,
                "ignoring {ENV_VAR}={raw:?}: expected 0|off, 1|on, 2|listen or 3|dial; \
                 using the built-in default (MPTCP for listeners and dialers)"
            );
            built_in(PolicySource::Ignored(raw.to_owned()))
        }
    }
}

/// Parses a value of [`ENV_VAR`] into (listeners, dialers).
fn parse(value: &str) -> Option<(bool, bool)> {
    let v = value.trim().to_ascii_lowercase();
    Some(match v.as_str() {
        "0" | "off" | "false" | "none" => (false, false),
        "1" | "on" | "true" | "both" => (true, true),
        "2" | "listen" | "listener" | "listeners" => (true, false),
        "3" | "dial" | "dialer" | "dialers" => (false, true),
        _ => return None,
    })
}

/// Per-object policy shared by `Dialer` and `ListenConfig`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// `None`: follow the process default.
    pub(crate) explicit: Option<bool>,
    /// Error instead of falling back when MPTCP sockets cannot be created.
    pub(crate) required: bool,
}

impl Policy {
    pub(crate) fn set(&mut self, enabled: bool) {
        self.explicit = Some(enabled);
        if !enabled {
            self.required = false;
        }
    }

    pub(crate) fn require(&mut self, required: bool) {
        self.required = required;
        if required {
            self.explicit = Some(true);
        }
    }

    /// The resolved intent: explicit setting, else the process default.
    pub(crate) fn resolve(&self, process_default: impl FnOnce() -> bool) -> bool {
        self.explicit.unwrap_or_else(process_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_digits_and_words() {
        for (v, want) in [
            ("0", (false, false)),
            ("off", (false, false)),
            ("OFF", (false, false)),
            ("1", (true, true)),
            ("on", (true, true)),
            (" both ", (true, true)),
            ("2", (true, false)),
            ("listen", (true, false)),
            ("Listeners", (true, false)),
            ("3", (false, true)),
            ("dial", (false, true)),
            ("dialers", (false, true)),
        ] {
            assert_eq!(parse(v), Some(want), "value {v:?}");
            let d = from_env_value(Some(v));
            assert_eq!((d.listeners, d.dialers), want, "value {v:?}");
            assert_eq!(d.source, PolicySource::Environment(v.to_owned()));
        }
    }

    #[test]
    fn unset_empty_and_bad_values_mean_both() {
        for v in [None, Some(""), Some("  ")] {
            let d = from_env_value(v);
            assert!(d.listeners && d.dialers);
            assert_eq!(d.source, PolicySource::BuiltIn);
        }
        for bad in ["4", "yes please", "-1", "dial,listen"] {
            assert_eq!(parse(bad), None, "{bad:?}");
            let d = from_env_value(Some(bad));
            assert!(d.listeners && d.dialers);
            assert_eq!(d.source, PolicySource::Ignored(bad.to_owned()));
        }
    }

    #[test]
    fn object_policy_overrides_and_required_implies_on() {
        let mut p = Policy::default();
        assert!(!p.resolve(|| false));
        assert!(p.resolve(|| true));
        p.set(true);
        assert!(p.resolve(|| false));
        p.require(true);
        p.set(false);
        assert!(!p.required, "turning MPTCP off drops the requirement");
        assert!(!p.resolve(|| true));
        p.require(true);
        assert_eq!(p.explicit, Some(true));
    }
}
