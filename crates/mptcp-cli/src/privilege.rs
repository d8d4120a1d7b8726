//! Giving up what a daemon does not need once it is set up: root (`--user`) and
//! capabilities.
//!
//! A relay needs root, if at all, only to bind a port under 1024 or a transparent
//! listener and to enter a network namespace; after that it only moves bytes
//! between sockets it already holds. Switching every thread to an unprivileged
//! user (`setgroups`, `setgid`, `setuid`: glibc applies each to all threads)
//! clears every capability from the permitted and effective sets, so a bug in the
//! relay cannot be turned into root on the host. HAProxy's `user`/`group`
//! settings are the same idea.
//!
//! Capability sets, unlike the user ids, belong to one thread: a set changed by
//! `capset(2)` or `PR_CAPBSET_DROP` holds for the calling thread and the threads
//! it starts afterwards. So [`restrict`] runs before a daemon starts any thread
//! (`mptcp pm run`, `mptcp lb run`), and [`drop_bounding`] before a runtime's
//! threads exist; the exporter's namespace threads drop theirs themselves.
//!
//! | daemon | keeps after setup |
//! |---|---|
//! | `mptcp pm run` | `CAP_NET_ADMIN` (every path-manager command is checked at send time) |
//! | `mptcp lb run` | `CAP_NET_ADMIN`; with token steering also `CAP_BPF`, `CAP_PERFMON`, `CAP_SYS_ADMIN` |
//! | `mptcp exporter` | nothing |
//! | `mptcp proxy --user` | nothing |

use nix::unistd::{getgid, getuid, setgid, setgroups, setuid, Uid, User};
use rustix::thread::{self as rt, CapabilitySet, CapabilitySets};

use crate::error::Error;

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`;
/// 40 on Linux 5.9 and later when the file cannot be read).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// Capability `n` as a one-bit set.
fn cap(n: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << n)
}

/// Drops every capability outside `keep` from the calling thread's bounding set
/// (inherited by the threads and programs it starts later), so that nothing it
/// runs can gain them back. Needs `CAP_SETPCAP` for a capability still in the
/// set; without it, fine only if this thread holds no capability to protect.
pub fn drop_bounding(keep: CapabilitySet) -> Result<(), Error> {
    for n in 0..=last_cap() {
        let c = cap(n);
        if keep.contains(c) || !rt::capability_is_in_bounding_set(c).unwrap_or(false) {
            continue;
        }
        if let Err(e) = rt::remove_capability_from_bounding_set(c) {
            let held = rt::capabilities(None)
                .map(|s| !s.permitted.is_empty())
                .unwrap_or(true);
            if held {
                return Err(Error::msg(format!(
                    "cannot drop capability {n} from the bounding set ({e}): that needs CAP_SETPCAP"
                )));
            }
            // An unprivileged user: it holds nothing a bounding set would guard.
            tracing::debug!("bounding set left as it is: {e}");
            return Ok(());
        }
    }
    Ok(())
}

/// Sets the calling thread's permitted, effective, inheritable and ambient sets
/// to `keep` (what of it the thread holds), and checks the result.
pub fn keep_only(keep: CapabilitySet) -> Result<(), Error> {
    let have = rt::capabilities(None)
        .map_err(|e| Error::msg(format!("cannot read this thread's capabilities: {e}")))?;
    let kept = keep & have.permitted;
    // The ambient set lets a kept capability through an exec as a user other
    // than root (`mptcp lb` runs `nft` and `ip`); it may only hold what the
    // permitted and inheritable sets hold, so it is emptied first.
    let _ = rt::clear_ambient_capability_set();
    rt::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: kept,
        },
    )
    .map_err(|e| Error::msg(format!("cannot set this thread's capabilities: {e}")))?;
    for n in 0..=last_cap() {
        if kept.contains(cap(n)) {
            rt::configure_capability_in_ambient_set(cap(n), true)
                .map_err(|e| Error::msg(format!("cannot keep capability {n} across exec: {e}")))?;
        }
    }
    let now = rt::capabilities(None)
        .map_err(|e| Error::msg(format!("cannot read this thread's capabilities: {e}")))?;
    if !(now.permitted | now.effective | now.inheritable)
        .difference(keep)
        .is_empty()
    {
        return Err(Error::msg(
            "capabilities were not dropped; stopping rather than running privileged",
        ));
    }
    Ok(())
}

/// What a daemon that needs some capabilities for its life does once, before it
/// starts any thread: the bounding set cut to `keep`, then (with `user`) the
/// switch to that user keeping `keep` across it (`PR_SET_KEEPCAPS`), then every
/// set cut to `keep`.
pub fn restrict(keep: CapabilitySet, user: Option<&str>) -> Result<(), Error> {
    drop_bounding(keep)?;
    if let Some(name) = user {
        rt::set_keep_capabilities(true)
            .map_err(|e| Error::msg(format!("cannot keep capabilities across --user: {e}")))?;
        let switched = become_user(name);
        let _ = rt::set_keep_capabilities(false);
        switched?;
    }
    keep_only(keep)
}

/// Switches the whole process to `name` (a user name or a numeric uid) and its
/// primary group, with no supplementary groups. Checked afterwards: the real and
/// effective ids are the user's and root cannot be regained. Without
/// `PR_SET_KEEPCAPS` this also clears every capability of every thread.
pub fn become_user(name: &str) -> Result<(), Error> {
    let user = check_user(name)?;
    let denied = |what: &str, e: nix::Error| {
        Error::msg(format!(
            "--user {name}: {what} failed ({e}); switching users needs root (or CAP_SETUID and CAP_SETGID)"
        ))
    };
    setgroups(&[user.gid]).map_err(|e| denied("setgroups", e))?;
    setgid(user.gid).map_err(|e| denied("setgid", e))?;
    setuid(user.uid).map_err(|e| denied("setuid", e))?;
    if getuid() != user.uid || getgid() != user.gid || setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::msg(format!(
            "--user {name}: the switch did not hold; stopping rather than running privileged"
        )));
    }
    tracing::info!(
        "running as {} (uid {}, gid {})",
        user.name,
        user.uid,
        user.gid
    );
    Ok(())
}

/// Looks a `--user` value up (a name or a uid), refusing root: a typo is then a
/// clear error at start, before the daemon touched the system.
pub fn check_user(name: &str) -> Result<User, Error> {
    let user = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    }
    .map_err(|e| Error::msg(format!("--user {name}: cannot look the user up: {e}")))?
    .ok_or_else(|| Error::msg(format!("--user {name}: no such user")))?;
    if user.uid.is_root() {
        return Err(Error::msg(format!(
            "--user {name}: that is root; name an unprivileged user (for example nobody)"
        )));
    }
    Ok(user)
}
