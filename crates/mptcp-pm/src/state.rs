//! The daemon's lock and memory, one file per network namespace under the state
//! directory (`/run/mptcp-pm` by default): `net-<inode>.json`, locked with `flock` for
//! as long as a daemon runs there. It records which endpoint ids the daemon created
//! and which id each address had, so a restarted daemon (after a crash, `--once` or
//! `--keep`) adopts its own endpoints and never mistakes them for hand-made ones.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/mptcp-pm";

/// What a daemon remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The pid of the daemon that wrote it.
    pub pid: u32,
    /// Endpoints it created: id -> address.
    pub owned: BTreeMap<u8, IpAddr>,
    /// The id each address last had.
    pub remembered: BTreeMap<IpAddr, u8>,
    /// The userspace daemon switched the path-manager sysctl from this value: put it
    /// back on exit (or, after a crash, on the next run's exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pm_restore: Option<String>,
}

/// The identity of the calling thread's network namespace: the inode of its nsfs file.
///
/// # Errors
/// When `/proc/thread-self/ns/net` cannot be read.
pub fn netns_id() -> io::Result<u64> {
    Ok(rustix::fs::stat("/proc/thread-self/ns/net")?.st_ino)
}

/// The state file of the namespace `netns` under `dir`.
pub fn state_path(dir: &Path, netns: u64) -> PathBuf {
    dir.join(format!("net-{netns}.json"))
}

/// Reads a state file without taking the lock (for `mptcp pm plan`); a missing or
/// unreadable file is an empty memory.
pub fn peek(path: &Path) -> Memory {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The locked state file of a running daemon.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Creates `dir` if needed and locks the namespace's state file, returning what an
    /// earlier daemon left in it.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] with the holder's pid in the message when another
    /// daemon holds the namespace; any other I/O error.
    pub fn acquire(dir: &Path, netns: u64) -> io::Result<(Lock, Memory)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = state_path(dir, netns);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let holder = peek(&path).pid;
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another `mptcp pm run` (pid {holder}) manages this network namespace \
                         (lock {})",
                        path.display()
                    ),
                ));
            }
            return Err(e.into());
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let memory = serde_json::from_slice(&text).unwrap_or_default();
        Ok((Lock { file, path }, memory))
    }

    /// Writes `memory` (the lock stays held).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&mut self, memory: &Memory) -> io::Result<()> {
        let text = serde_json::to_vec(memory).map_err(io::Error::other)?;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(&text)?;
        self.file.flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_memory_survives() {
        let dir = std::env::temp_dir().join(format!("mptcp-pm-state-{}", std::process::id()));
        let (mut lock, mem) = Lock::acquire(&dir, 1).unwrap();
        assert_eq!(mem, Memory::default());
        let m = Memory {
            pid: 42,
            owned: [(3, IpAddr::from([198, 18, 0, 1]))].into(),
            remembered: [(IpAddr::from([198, 18, 0, 1]), 3)].into(),
            pm_restore: Some("kernel".into()),
        };
        lock.save(&m).unwrap();
        let err = Lock::acquire(&dir, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("(pid 42)"), "{err}");
        assert_eq!(peek(lock.path()), m);
        drop(lock);
        let (_lock, again) = Lock::acquire(&dir, 1).unwrap();
        assert_eq!(again, m);
        // Another namespace has its own file.
        let (_other, empty) = Lock::acquire(&dir, 2).unwrap();
        assert_eq!(empty, Memory::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
