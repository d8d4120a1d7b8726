//! One named network namespace, created with `ip netns add` and deleted on drop.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use mptcp_netlink::netns::NETNS_DIR;
use rustix::process::{getpid, Pid};

use crate::{cmd, Counters, Error};

/// Every namespace this crate creates starts with this, then `<pid>-<counter>`.
const PREFIX: &str = "mpt-";
/// The caller's label is cut to this many characters.
const LABEL_MAX: usize = 16;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static SWEEP_STALE: Once = Once::new();

/// A fresh, named network namespace: `ip netns add mpt-<pid>-<n>-<label>`, with `lo` up.
///
/// The name holds the process id and a per-process counter, so namespaces never clash,
/// neither between tests of one process nor between processes. The namespace is
/// removed (`ip netns del`) when the value is dropped, also while a panic unwinds;
/// sockets created inside it keep it alive until they are closed. The first
/// namespace a process creates also removes namespaces left behind by processes of
/// this crate that have died (killed tests, aborted demos).
///
/// ```no_run
/// use mptcp_testnet::Netns;
///
/// let ns = Netns::new("demo")?;
/// ns.set_sysctl("net.mptcp.enabled", "1")?;
/// // The closure runs on a thread inside the namespace: this listener lives there.
/// let listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0"))??;
/// println!("listening on {} in {}", listener.local_addr()?, ns.name());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// `/run/netns/<name>`, kept open for `setns`.
    handle: File,
}

impl Netns {
    /// Creates the namespace and brings its loopback interface up.
    ///
    /// `label` only makes the name readable (`ip netns list`); characters other than
    /// ASCII letters, digits, `-` and `_` become `_`, and it is cut to 16 characters.
    ///
    /// # Errors
    /// [`Error::NotRoot`], [`Error::MissingTool`] without `ip`, [`Error::Command`] when
    /// `ip netns add` fails.
    pub fn new(label: &str) -> Result<Netns, Error> {
        if !rustix::process::geteuid().is_root() {
            return Err(Error::NotRoot);
        }
        cmd::find_tool("ip")?;
        SWEEP_STALE.call_once(|| {
            Netns::remove_stale();
        });

        let name = unique_name(label);
        cmd::run("ip", ["netns", "add", &name])?;
        let path = Path::new(NETNS_DIR).join(&name);
        let handle = match File::open(&path) {
            Ok(handle) => handle,
            Err(e) => {
                let _ = delete(&name);
                return Err(Error::io(format!("cannot open {}", path.display()), e));
            }
        };
        let ns = Netns { name, handle };
        ns.ip(["link", "set", "lo", "up"])?;
        tracing::debug!(netns = %ns.name, "created");
        Ok(ns)
    }

    /// Removes the namespaces this crate created for processes that are gone
    /// (`mpt-<pid>-...` where no process `<pid>` exists), for instance after a test
    /// was killed, and returns their names. [`Netns::new`] calls it once per process.
    ///
    /// Best effort: a namespace that cannot be removed is logged and skipped. The
    /// check sees the processes of this PID namespace only, so do not share
    /// `/run/netns` with containers that run this crate in other PID namespaces.
    pub fn remove_stale() -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
            return Vec::new();
        };
        let me = getpid();
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner_pid(&name) else {
                continue;
            };
            let gone = matches!(
                rustix::process::test_kill_process(pid),
                Err(rustix::io::Errno::SRCH)
            );
            if pid != me && gone && delete(&name) {
                tracing::info!(netns = %name, "removed the namespace of a dead process");
                removed.push(name);
            }
        }
        removed
    }

    /// The namespace's name, as `ip netns list` shows it and `ip -n` takes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that first joins this namespace (`setns(2)` with
    /// `CLONE_NEWNET` on `/run/netns/<name>`), and returns what `f` returns.
    ///
    /// Sockets created in `f` belong to this namespace for their whole life, whatever
    /// thread uses them later. The thread is scoped, so `f` may borrow. A panic in `f`
    /// is resumed in the caller.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be started or cannot enter the namespace.
    pub fn run<F, R>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let fd = self.handle.as_fd();
        let name = &self.name;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("netns {name}"))
                .spawn_scoped(scope, move || {
                    mptcp_netlink::netns::enter_fd(fd, name)
                        .map_err(|e| Error::io(format!("setns into {name}"), e))?;
                    Ok(f())
                })
                .map_err(|e| Error::io("cannot start a thread", e))?;
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Sets a per-namespace sysctl, e.g. `set_sysctl("net.mptcp.enabled", "0")`, by
    /// writing `/proc/sys/net/...` from a thread inside the namespace.
    ///
    /// Only `net.*` keys are accepted: other sysctls are not per namespace, and setting
    /// them would change the host. Keys may use `.` or `/` as separator (use `/` when an
    /// interface name in the key contains a dot).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key outside `net.`; [`Error::Io`] when the kernel
    /// refuses (unknown key, bad value).
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
        let path = sysctl_path(key)?;
        self.run(|| std::fs::write(&path, value))?.map_err(|e| {
            Error::io(
                format!("cannot set sysctl {key}={value} in {}", self.name),
                e,
            )
        })
    }

    /// Reads a per-namespace sysctl, trimmed, e.g. `sysctl("net.mptcp.enabled")` -> `"1"`.
    ///
    /// # Errors
    /// As for [`set_sysctl`](Self::set_sysctl).
    pub fn sysctl(&self, key: &str) -> Result<String, Error> {
        let path = sysctl_path(key)?;
        let text = self
            .run(|| std::fs::read_to_string(&path))?
            .map_err(|e| Error::io(format!("cannot read sysctl {key} in {}", self.name), e))?;
        Ok(text.trim().to_string())
    }

    /// A snapshot of this namespace's counters (`netstat` and `snmp`, read through
    /// `/proc/thread-self/net/` from inside the namespace: `/proc/net` would show the
    /// namespace of the process's main thread instead).
    ///
    /// # Errors
    /// [`Error::Io`] if the files cannot be read, [`Error::Parse`] if they are malformed.
    pub fn counters(&self) -> Result<Counters, Error> {
        let text = self.run(|| -> std::io::Result<String> {
            let mut text = std::fs::read_to_string("/proc/thread-self/net/netstat")?;
            text.push_str(&std::fs::read_to_string("/proc/thread-self/net/snmp")?);
            Ok(text)
        })?;
        let text =
            text.map_err(|e| Error::io(format!("cannot read counters of {}", self.name), e))?;
        Counters::parse(&text)
    }

    /// A [`Command`] that runs `program` inside the namespace, through
    /// `ip netns exec <name> <program>`; add arguments and run it as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let ip = cmd::find_tool("ip").unwrap_or_else(|_| PathBuf::from("ip"));
        let mut command = Command::new(ip);
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program args...` inside the namespace and returns its output, e.g.
    /// `exec("ss", ["-tni"])`.
    ///
    /// # Errors
    /// [`Error::Command`] (with its stderr) if it exits with a non-zero status;
    /// [`Error::MissingTool`] if it cannot be found.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::find_tool(program)?;
        let mut command = self.command(program);
        command.args(args);
        cmd::output(&mut command)
    }

    /// Runs `ip -n <name> args...`.
    pub(crate) fn ip<I, S>(&self, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = cmd::command("ip")?;
        command.args(["-n", &self.name]).args(args);
        cmd::output(&mut command)
    }

    /// Runs `tc -n <name> args...`.
    pub(crate) fn tc<I, S>(&self, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = cmd::command("tc")?;
        command.args(["-n", &self.name]).args(args);
        cmd::output(&mut command)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if delete(&self.name) {
            tracing::debug!(netns = %self.name, "removed");
        }
    }
}

/// `ip netns del`; false (and a warning) if it fails.
fn delete(name: &str) -> bool {
    match cmd::run("ip", ["netns", "del", name]) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(netns = %name, error = %e, "cannot remove network namespace");
            false
        }
    }
}

fn unique_name(label: &str) -> String {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let label: String = label
        .chars()
        .take(LABEL_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let pid = getpid().as_raw_nonzero();
    if label.is_empty() {
        format!("{PREFIX}{pid}-{id}")
    } else {
        format!("{PREFIX}{pid}-{id}-{label}")
    }
}

/// The pid embedded in a name made by [`unique_name`].
fn owner_pid(name: &str) -> Option<Pid> {
    let pid = name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()?;
    Pid::from_raw(pid)
}

/// `/proc/sys/...` for a `net.` sysctl key.
fn sysctl_path(key: &str) -> Result<PathBuf, Error> {
    let relative = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let parts: Vec<&str> = relative.split('/').collect();
    let valid = matches!(parts.as_slice(), ["net", rest @ ..]
        if !rest.is_empty() && rest.iter().all(|p| !p.is_empty() && *p != "." && *p != ".."));
    if !valid {
        return Err(Error::InvalidConfig(format!(
            "sysctl key {key:?}: only per-namespace `net.` keys can be set here"
        )));
    }
    Ok(Path::new("/proc/sys").join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_the_pid() {
        let a = unique_name("client");
        let b = unique_name("client");
        assert_ne!(a, b);
        assert!(a.ends_with("-client"), "{a}");
        assert_eq!(owner_pid(&a), Some(getpid()));
        let odd = unique_name("a b/c.d-and-a-very-long-label");
        assert!(odd.ends_with("-a_b_c_d-and-a-ve"), "{odd}");
        assert!(unique_name("").starts_with(PREFIX));
        assert_eq!(owner_pid("other-12-0"), None);
        assert_eq!(owner_pid("mpt-x-0"), None);
    }

    #[test]
    fn sysctl_keys_stay_in_net() {
        assert_eq!(
            sysctl_path("net.mptcp.enabled").unwrap(),
            Path::new("/proc/sys/net/mptcp/enabled")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in [
            "kernel.hostname",
            "net",
            "net/../kernel/hostname",
            "net..mptcp",
            "",
            "/net/mptcp",
        ] {
            assert!(
                matches!(sysctl_path(bad), Err(Error::InvalidConfig(_))),
                "{bad:?}"
            );
        }
    }
}
