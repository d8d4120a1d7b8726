//! Giving up root once a daemon has what it needs from it (`--user`).
//!
//! A relay needs root, if at all, only to bind a port under 1024 or a transparent
//! listener and to enter a network namespace; after that it only moves bytes
//! between sockets it already holds. Switching every thread to an unprivileged
//! user (`setgroups`, `setgid`, `setuid`: glibc applies each to all threads)
//! clears every capability from the permitted and effective sets, so a bug in the
//! relay cannot be turned into root on the host. HAProxy's `user`/`group`
//! settings are the same idea.

use nix::unistd::{getgid, getuid, setgid, setgroups, setuid, Uid, User};

use crate::error::Error;

/// Switches the whole process to `name` (a user name or a numeric uid) and its
/// primary group, with no supplementary groups. Checked afterwards: the real and
/// effective ids are the user's, and no capability is left.
pub fn become_user(name: &str) -> Result<(), Error> {
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
