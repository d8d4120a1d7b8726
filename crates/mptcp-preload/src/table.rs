//! The MPTCP sockets this library made that have not yet connected or
//! listened ("fresh"), with what the program did to them so far, so that a
//! swap to TCP can redo it.
//!
//! A map behind a mutex, consulted only while at least one fresh socket
//! exists ([`LIVE`]), so programs that never hold one pay one atomic load per
//! wrapped call. `fork()` takes the lock first and both sides release it
//! after (`pthread_atfork`, see [`before_fork`]), so a child forked while
//! another thread held it does not find it locked for ever.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Options larger than this are not recorded (every option MPTCP accepts is
/// far smaller; `TCP_MD5SIG`'s 80 bytes is refused anyway).
const MAX_OPTION_LEN: usize = 256;

/// One setsockopt() that succeeded on a fresh MPTCP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SavedOption {
    pub(crate) level: c_int,
    pub(crate) name: c_int,
    pub(crate) value: Vec<u8>,
}

/// What is known of a fresh MPTCP socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fresh {
    /// `AF_INET` or `AF_INET6`.
    pub(crate) domain: c_int,
    /// In the order they were set; a later setting of the same option
    /// replaces the earlier one.
    pub(crate) options: Vec<SavedOption>,
    /// An option too large to record was set: a swap loses it.
    pub(crate) lost_option: bool,
    /// The address bind() gave it (from getsockname(), so port 0 is resolved).
    pub(crate) bound: Option<Vec<u8>>,
}

impl Fresh {
    pub(crate) fn new(domain: c_int) -> Fresh {
        Fresh {
            domain,
            ..Fresh::default()
        }
    }

    pub(crate) fn record(&mut self, level: c_int, name: c_int, value: &[u8]) {
        if value.len() > MAX_OPTION_LEN {
            self.lost_option = true;
            return;
        }
        self.options
            .retain(|o| !(o.level == level && o.name == name));
        self.options.push(SavedOption {
            level,
            name,
            value: value.to_vec(),
        });
    }
}

static TABLE: Mutex<BTreeMap<c_int, Fresh>> = Mutex::new(BTreeMap::new());
/// Entries in [`TABLE`].
static LIVE: AtomicUsize = AtomicUsize::new(0);

type Guard = MutexGuard<'static, BTreeMap<c_int, Fresh>>;

fn lock() -> Guard {
    // A panic while holding the lock cannot leave the map half-changed in a
    // way that matters here: keep using it.
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn table() -> Guard {
    crate::sys::register_fork_handlers();
    lock()
}

thread_local! {
    /// The lock, held by the forking thread across fork().
    static HELD: RefCell<Option<Guard>> = const { RefCell::new(None) };
}

/// `pthread_atfork` prepare handler: take the lock, so no other thread holds
/// it at the instant of the fork.
pub(crate) extern "C" fn before_fork() {
    let guard = lock();
    HELD.with(|held| *held.borrow_mut() = Some(guard));
}

/// `pthread_atfork` parent and child handler: release it (in the child, the
/// forking thread is the copy of the one that took it).
pub(crate) extern "C" fn after_fork() {
    HELD.with(|held| drop(held.borrow_mut().take()));
}

fn update_live(map: &BTreeMap<c_int, Fresh>) {
    LIVE.store(map.len(), Ordering::Relaxed);
}

/// Whether any fresh socket exists (the fast path for every other call).
pub(crate) fn any() -> bool {
    LIVE.load(Ordering::Relaxed) != 0
}

/// A new fresh socket on `fd` (replacing whatever stale entry had that number).
pub(crate) fn insert(fd: c_int, fresh: Fresh) {
    let mut map = table();
    map.insert(fd, fresh);
    update_live(&map);
}

/// Forgets `fd` (it connected, listened, was swapped or closed).
pub(crate) fn remove(fd: c_int) -> Option<Fresh> {
    if !any() {
        return None;
    }
    let mut map = table();
    let fresh = map.remove(&fd);
    update_live(&map);
    fresh
}

/// Runs `f` on `fd`'s entry, if it is fresh.
pub(crate) fn with<R>(fd: c_int, f: impl FnOnce(&mut Fresh) -> R) -> Option<R> {
    if !any() {
        return None;
    }
    table().get_mut(&fd).map(f)
}

/// Whether `fd` is a fresh socket.
pub(crate) fn contains(fd: c_int) -> bool {
    any() && table().contains_key(&fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_setting_replaces_the_earlier_one() {
        let mut fresh = Fresh::new(libc::AF_INET);
        fresh.record(libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32.to_ne_bytes());
        fresh.record(libc::IPPROTO_TCP, libc::TCP_NODELAY, &1i32.to_ne_bytes());
        fresh.record(libc::SOL_SOCKET, libc::SO_REUSEADDR, &0i32.to_ne_bytes());
        assert_eq!(fresh.options.len(), 2);
        assert_eq!(fresh.options[0].name, libc::TCP_NODELAY);
        assert_eq!(fresh.options[1].value, 0i32.to_ne_bytes());
        fresh.record(libc::IPPROTO_TCP, libc::TCP_MD5SIG, &[0; 300]);
        assert!(fresh.lost_option);
        assert_eq!(fresh.options.len(), 2);
    }

    #[test]
    fn the_table_counts_its_entries() {
        // Descriptor numbers no real socket of this test process uses.
        insert(-10, Fresh::new(libc::AF_INET));
        insert(-11, Fresh::new(libc::AF_INET6));
        assert!(contains(-10));
        assert_eq!(with(-11, |f| f.domain), Some(libc::AF_INET6));
        assert!(remove(-10).is_some());
        assert!(remove(-10).is_none());
        assert!(remove(-11).is_some());
        assert!(!contains(-11));
    }
}
