//! Every `unsafe` block of the library: the real libc functions (found with
//! `dlsym(RTLD_NEXT, ...)`, i.e. the next definition after this library in
//! the lookup order, normally libc's), errno, and the swap of a socket in
//! place.

use std::ffi::CStr;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{sockaddr, sockaddr_storage, socklen_t};

use crate::table::Fresh;

/// Resolves a libc function once, caching it in an `AtomicPtr`.
macro_rules! real {
    ($getter:ident, $name:literal, $ty:ty) => {
        fn $getter() -> Option<$ty> {
            static PTR: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let mut ptr = PTR.load(Ordering::Relaxed);
            if ptr.is_null() {
                let name: &CStr = $name;
                // SAFETY: dlsym takes a NUL-terminated name; RTLD_NEXT is a
                // valid pseudo-handle for a shared object's own lookups.
                ptr = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
                if ptr.is_null() {
                    return None;
                }
                PTR.store(ptr, Ordering::Relaxed);
            }
            // SAFETY: the symbol is libc's function of that name, whose C
            // signature is `$ty`; data and function pointers have the same
            // size on every Linux target.
            Some(unsafe { mem::transmute::<*mut c_void, $ty>(ptr) })
        }
    };
}

type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type SetsockoptFn = unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
type AddrFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type ListenFn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;

real!(real_socket, c"socket", SocketFn);
real!(real_setsockopt, c"setsockopt", SetsockoptFn);
real!(real_connect, c"connect", AddrFn);
real!(real_bind, c"bind", AddrFn);
real!(real_listen, c"listen", ListenFn);
real!(real_close, c"close", CloseFn);

/// Registers [`crate::table::before_fork`] and [`crate::table::after_fork`]
/// with `pthread_atfork`, once, before the fresh-socket lock is first taken.
pub(crate) fn register_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: three valid handlers (or none); they only take and release
        // a std mutex held in a thread-local.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(crate::table::before_fork),
                Some(crate::table::after_fork),
                Some(crate::table::after_fork),
            )
        };
        if rc != 0 {
            crate::debug(format_args!("pthread_atfork failed ({rc})"));
        }
    });
}

/// The calling thread's errno.
pub(crate) fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets the calling thread's errno.
pub(crate) fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = value };
}

/// -1 with errno `ENOSYS`: what a wrapper returns if libc's function cannot
/// be found (it always can in a dynamically linked program).
fn missing() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

pub(crate) fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    match real_socket() {
        // SAFETY: plain integers, libc's socket().
        Some(f) => unsafe { f(domain, ty, protocol) },
        None => missing(),
    }
}

/// # Safety
/// `value` and `len` as for setsockopt(2): `len` readable bytes at `value`.
pub(crate) unsafe fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    match real_setsockopt() {
        // SAFETY: the caller's pointer and length, passed on unchanged.
        Some(f) => unsafe { f(fd, level, name, value, len) },
        None => missing(),
    }
}

/// The bytes of a setsockopt() value, to record them.
///
/// # Safety
/// As for [`setsockopt`]; only called after the kernel read them successfully.
pub(crate) unsafe fn option_bytes(value: *const c_void, len: socklen_t) -> Vec<u8> {
    if value.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the kernel just copied `len` bytes from `value` without EFAULT.
    unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len as usize) }.to_vec()
}

/// # Safety
/// `addr` and `len` as for connect(2).
pub(crate) unsafe fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match real_connect() {
        // SAFETY: the caller's pointer and length, passed on unchanged.
        Some(f) => unsafe { f(fd, addr, len) },
        None => missing(),
    }
}

/// # Safety
/// `addr` and `len` as for bind(2).
pub(crate) unsafe fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match real_bind() {
        // SAFETY: the caller's pointer and length, passed on unchanged.
        Some(f) => unsafe { f(fd, addr, len) },
        None => missing(),
    }
}

pub(crate) fn listen(fd: c_int, backlog: c_int) -> c_int {
    match real_listen() {
        // SAFETY: plain integers, libc's listen().
        Some(f) => unsafe { f(fd, backlog) },
        None => missing(),
    }
}

pub(crate) fn close(fd: c_int) -> c_int {
    match real_close() {
        // SAFETY: plain integer, libc's close().
        Some(f) => unsafe { f(fd) },
        None => missing(),
    }
}

fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>() as socklen_t;
    // SAFETY: `value` is a c_int and `len` its size.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

/// The address `fd` is bound to (getsockname), as raw sockaddr bytes.
pub(crate) fn local_address(fd: c_int) -> Option<Vec<u8>> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<sockaddr_storage>() as socklen_t;
    // SAFETY: `storage` has room for `len` bytes.
    let rc = unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut len) };
    if rc != 0 {
        return None;
    }
    let len = (len as usize).min(mem::size_of::<sockaddr_storage>());
    // SAFETY: the kernel wrote `len` bytes (at most the storage's size).
    let bytes = unsafe { std::slice::from_raw_parts((&raw const storage).cast::<u8>(), len) };
    Some(bytes.to_vec())
}

/// Whether `fd` is an MPTCP socket that has neither connected nor listened:
/// the only kind that can be replaced without the program noticing.
pub(crate) fn is_unconnected_mptcp(fd: c_int) -> bool {
    if getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) != Some(crate::policy::IPPROTO_MPTCP)
    {
        return false;
    }
    if getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) != Some(0) {
        return false;
    }
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<sockaddr_storage>() as socklen_t;
    // SAFETY: `storage` has room for `len` bytes.
    let rc = unsafe { libc::getpeername(fd, (&raw mut storage).cast(), &mut len) };
    rc != 0 && errno() == libc::ENOTCONN
}

/// Replaces the MPTCP socket on `fd` by a TCP one, in place: same descriptor
/// number, file status flags (`O_NONBLOCK`), `FD_CLOEXEC`, the options
/// recorded in `fresh`, and the bound address. On error, `fd` is unchanged
/// unless the error came from re-binding (then `fd` is an unbound TCP socket)
/// and the errno is returned.
pub(crate) fn swap_to_tcp(fd: c_int, fresh: &Fresh) -> Result<(), c_int> {
    // SAFETY: fcntl on a descriptor number; the kernel checks it.
    let status_flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if status_flags < 0 || fd_flags < 0 {
        return Err(errno());
    }
    let tcp = socket(
        fresh.domain,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_TCP,
    );
    if tcp < 0 {
        return Err(errno());
    }
    // SAFETY: fcntl on the descriptor just made.
    if unsafe { libc::fcntl(tcp, libc::F_SETFL, status_flags) } < 0 {
        let e = errno();
        close(tcp);
        return Err(e);
    }
    for option in &fresh.options {
        // SAFETY: the value's bytes and their length.
        let rc = unsafe {
            setsockopt(
                tcp,
                option.level,
                option.name,
                option.value.as_ptr().cast(),
                option.value.len() as socklen_t,
            )
        };
        if rc != 0 {
            crate::debug(format_args!(
                "fd {fd}: the TCP socket refused option {}/{} (errno {}); left unset",
                option.level,
                option.name,
                errno()
            ));
        }
    }
    let cloexec = if fd_flags & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // SAFETY: dup3 on two descriptor numbers; it closes the MPTCP socket on
    // `fd` and puts the TCP socket there atomically.
    let rc = unsafe { libc::dup3(tcp, fd, cloexec) };
    let e = errno();
    close(tcp);
    if rc < 0 {
        return Err(e);
    }
    if let Some(addr) = &fresh.bound {
        // SAFETY: the sockaddr bytes getsockname() gave, and their length.
        let rc = unsafe { bind(fd, addr.as_ptr().cast(), addr.len() as socklen_t) };
        if rc != 0 {
            return Err(errno());
        }
    }
    Ok(())
}
