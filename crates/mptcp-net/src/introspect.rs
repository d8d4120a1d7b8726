//! The system calls behind `MptcpExt::mptcp_info` and `MptcpExt::subflows`;
//! the byte layouts are in [`crate::info::wire`].

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::errno::{errno_in, explain, NOT_HERE};
use crate::info::wire::{
    self, FULL_INFO_LEN, MPTCP_INFO_LEN, SUBFLOW_ADDRS_LEN, SUBFLOW_DATA_LEN, SUBFLOW_INFO_LEN,
    TCP_INFO_LEN,
};
use crate::info::{MptcpInfo, SubflowInfo};
use crate::sys::{self, MPTCP_INFO, MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO, SOL_MPTCP};

/// Room for this many subflows on the first try: the kernel's limits allow
/// 8 extra subflows, so one call answers for any usual connection.
const FIRST_CAPACITY: u32 = 8;
/// Tries when subflows keep appearing between calls.
const MAX_TRIES: usize = 4;

/// Whether `MPTCP_FULL_INFO` (6.5+) works here: unknown, yes, no.
static FULL_INFO: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

#[cfg(feature = "test-seam")]
pub(crate) fn force_legacy(legacy: Option<bool>) {
    let v = match legacy {
        None => UNKNOWN,
        Some(true) => NO,
        Some(false) => YES,
    };
    FULL_INFO.store(v, Ordering::Relaxed);
}

pub(crate) fn mptcp_info(fd: BorrowedFd<'_>) -> io::Result<Option<MptcpInfo>> {
    // Larger than any known layout, so a newer kernel's longer struct is
    // read up to what this crate knows.
    let mut buf = [0u8; 2 * MPTCP_INFO_LEN];
    match sys::getsockopt_buf(fd, SOL_MPTCP, MPTCP_INFO, &mut buf) {
        Ok(len) => Ok(Some(wire::parse_mptcp_info(&buf[..len])?)),
        Err(e) if errno_in(&e, NOT_HERE) => match explain(fd, e) {
            // Plain TCP, or fell back: no MPTCP-level state.
            e if errno_in(&e, NOT_HERE) => Ok(None),
            e => Err(e),
        },
        Err(e) => Err(explain(fd, e)),
    }
}

pub(crate) fn subflows(fd: BorrowedFd<'_>) -> io::Result<Vec<SubflowInfo>> {
    if FULL_INFO.load(Ordering::Relaxed) != NO {
        match full_info(fd) {
            Ok(subflows) => {
                FULL_INFO.store(YES, Ordering::Relaxed);
                return Ok(subflows);
            }
            Err(e) if errno_in(&e, NOT_HERE) => {
                // Either not MPTCP (any more), or a 5.16-6.4 kernel without
                // MPTCP_FULL_INFO: MPTCP_INFO tells them apart.
                if !mptcp_in_use(fd)? {
                    return tcp_only(fd);
                }
                if FULL_INFO.load(Ordering::Relaxed) == YES {
                    return Err(e);
                }
                FULL_INFO.store(NO, Ordering::Relaxed);
            }
            Err(e) => return Err(explain(fd, e)),
        }
    }
    match legacy(fd) {
        Err(e) if errno_in(&e, NOT_HERE) && !mptcp_in_use(fd)? => tcp_only(fd),
        other => other,
    }
}

fn mptcp_in_use(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match sys::getsockopt_buf(fd, SOL_MPTCP, MPTCP_INFO, &mut []) {
        Ok(_) => Ok(true),
        Err(e) if errno_in(&e, NOT_HERE) => match explain(fd, e) {
            e if errno_in(&e, NOT_HERE) => Ok(false),
            e => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// One `MPTCP_FULL_INFO` call in the common case; more only when the
/// connection has more subflows than there was room for.
fn full_info(fd: BorrowedFd<'_>) -> io::Result<Vec<SubflowInfo>> {
    let mut capacity = FIRST_CAPACITY;
    let mut header = [0u8; FULL_INFO_LEN];
    let mut last = Vec::new();
    for _ in 0..MAX_TRIES {
        let n = capacity as usize;
        let mut sf = vec![0u8; n * SUBFLOW_INFO_LEN];
        let mut tcp = vec![0u8; n * TCP_INFO_LEN];
        let len = sys::mptcp_full_info(
            fd,
            &mut header,
            &mut sf,
            &mut tcp,
            capacity,
            SUBFLOW_INFO_LEN as u32,
            TCP_INFO_LEN as u32,
        )?;
        let reply = wire::parse_full_info(&header[..len], &sf, &tcp)?;
        if reply.complete {
            return Ok(reply.subflows);
        }
        capacity = reply.num_subflows.saturating_add(2);
        last = reply.subflows;
    }
    // Subflows kept coming faster than we asked: what fitted last time.
    Ok(last)
}

/// `MPTCP_TCPINFO` + `MPTCP_SUBFLOW_ADDRS` (5.16-6.4), paired by position;
/// asked again if a subflow came or went between the two calls.
fn legacy(fd: BorrowedFd<'_>) -> io::Result<Vec<SubflowInfo>> {
    let mut capacity = FIRST_CAPACITY as usize;
    let mut last = Vec::new();
    for _ in 0..MAX_TRIES {
        let tcp = subflow_array(fd, MPTCP_TCPINFO, TCP_INFO_LEN, capacity)?;
        let tcp = wire::parse_tcpinfo_reply(&tcp)?;
        let addrs = subflow_array(fd, MPTCP_SUBFLOW_ADDRS, SUBFLOW_ADDRS_LEN, capacity)?;
        let addrs = wire::parse_subflow_addrs_reply(&addrs)?;
        let consistent = tcp.header.num_subflows == addrs.header.num_subflows;
        let complete = tcp.is_complete() && addrs.is_complete();
        let wanted = tcp.header.num_subflows.max(addrs.header.num_subflows) as usize;
        last = wire::subflows_from_legacy(tcp.items, addrs.items);
        if consistent && complete {
            return Ok(last);
        }
        capacity = capacity.max(wanted.saturating_add(2));
    }
    Ok(last)
}

/// A `struct mptcp_subflow_data` request with room for `capacity`
/// elements of `element` bytes; the reply, cut to the length returned.
fn subflow_array(
    fd: BorrowedFd<'_>,
    name: libc::c_int,
    element: usize,
    capacity: usize,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; SUBFLOW_DATA_LEN + capacity * element];
    buf[..SUBFLOW_DATA_LEN].copy_from_slice(&wire::subflow_data_request(element as u32));
    let len = sys::getsockopt_buf(fd, SOL_MPTCP, name, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// A plain or fallen-back socket: its one TCP connection, without an id.
fn tcp_only(fd: BorrowedFd<'_>) -> io::Result<Vec<SubflowInfo>> {
    let mut buf = [0u8; 2 * TCP_INFO_LEN];
    let len = sys::getsockopt_buf(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut buf)?;
    let tcp = wire::parse_tcp_info(&buf[..len])?;
    let sock = socket2::SockRef::from(&fd);
    Ok(vec![SubflowInfo {
        id: None,
        local: sock.local_addr().ok().and_then(|a| a.as_socket()),
        remote: sock.peer_addr().ok().and_then(|a| a.as_socket()),
        tcp,
    }])
}
