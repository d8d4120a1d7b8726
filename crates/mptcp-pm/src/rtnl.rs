//! The host's links, addresses and default routes over rtnetlink: a full dump
//! ([`Rtnl::snapshot`]) and a subscription that says when to take the next one
//! ([`Watcher`]).
//!
//! Messages are framed and parsed by rust-netlink's `netlink-packet-route`; sockets
//! are `netlink-sys`'s, the same layer `mptcp-netlink` uses. A message that does not
//! parse is skipped with a debug log (a newer kernel's route type, say), never a panic.
//!
//! The watcher does not keep state from notifications: any relevant one (a link, an
//! address, a default route) only says "take a new snapshot". That is robust by
//! construction: a lost notification (`ENOBUFS`) costs one more snapshot, not a wrong
//! picture of the host.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::host::{AddrFlags, Address, DefaultRoute, HostState, Link, OperState};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// The longest wait for one answer of a dump.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a dump interrupted by a concurrent change (`NLM_F_DUMP_INTR`) is retried.
const DUMP_RETRIES: usize = 5;

/// A socket for dumps.
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// When the socket cannot be made or bound.
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Dumps links, addresses and routes, and reads each interface's `rp_filter`.
    ///
    /// # Errors
    /// When the kernel does not answer or answers with an error.
    pub fn snapshot(&mut self) -> io::Result<HostState> {
        let mut host = HostState::default();
        for msg in self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
            if let RouteNetlinkMessage::NewLink(l) = msg {
                let link = link_of(&l);
                host.links.insert(link.index, link);
            }
        }
        for msg in self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
            if let RouteNetlinkMessage::NewAddress(a) = msg {
                host.addresses.extend(address_of(&a));
            }
        }
        for msg in self.dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))? {
            if let RouteNetlinkMessage::NewRoute(r) = msg {
                host.default_routes.extend(default_routes_of(&r));
            }
        }
        let all = read_rp_filter("all");
        for link in host.links.values() {
            if let Some(own) = read_rp_filter(&link.name) {
                host.rp_filter.insert(link.index, own.max(all.unwrap_or(0)));
            }
        }
        Ok(host)
    }

    fn dump(&mut self, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            match self.dump_once(request.clone())? {
                Some(messages) => return Ok(messages),
                None => tracing::debug!("rtnetlink dump interrupted by a change; again"),
            }
        }
        Err(io::Error::other(
            "the host's interfaces kept changing during every rtnetlink dump",
        ))
    }

    /// One dump; `None` when the kernel flagged it as interrupted.
    fn dump_once(
        &mut self,
        request: RouteNetlinkMessage,
    ) -> io::Result<Option<Vec<RouteNetlinkMessage>>> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            if !wait_readable(&self.sock, REPLY_TIMEOUT)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from the kernel to an rtnetlink dump",
                ));
            }
            let (datagram, _) = self.sock.recv_from_full()?;
            for raw in frames(&datagram) {
                let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) else {
                    tracing::debug!(
                        len = raw.len(),
                        "skipping an rtnetlink message that does not parse"
                    );
                    continue;
                };
                if m.header.sequence_number != seq {
                    continue;
                }
                interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(out)),
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(io::Error::from_raw_os_error(-code.get()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The netlink messages in one datagram, by their length fields; a truncated tail is
/// dropped.
fn frames(datagram: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            rest = &[];
            return None;
        }
        let (frame, tail) = rest.split_at(len);
        rest = tail.get(len.next_multiple_of(4) - len..).unwrap_or(&[]);
        Some(frame)
    })
}

fn link_of(l: &LinkMessage) -> Link {
    let flags = l.header.flags;
    let mut link = Link {
        index: l.header.index,
        name: format!("#{}", l.header.index),
        admin_up: flags.contains(LinkFlags::Up),
        lower_up: flags.contains(LinkFlags::LowerUp),
        oper: OperState::Unknown,
        loopback: flags.contains(LinkFlags::Loopback),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::OperState(s) => {
                link.oper = match s {
                    State::Up => OperState::Up,
                    State::Down => OperState::Down,
                    State::LowerLayerDown => OperState::LowerLayerDown,
                    State::Dormant => OperState::Dormant,
                    State::Testing => OperState::Testing,
                    State::NotPresent => OperState::NotPresent,
                    _ => OperState::Unknown,
                }
            }
            _ => {}
        }
    }
    link
}

fn address_of(a: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(a.header.flags.bits());
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            // IFA_FLAGS carries all 32 bits; the header only the low 8.
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    // IFA_LOCAL is the local address of a point-to-point link, whose IFA_ADDRESS is
    // the peer's.
    let address: IpAddr = local.or(address)?;
    Some(Address {
        ifindex: a.header.index,
        address,
        prefix_len: a.header.prefix_len,
        flags: AddrFlags(flags),
    })
}

fn default_routes_of(r: &RouteMessage) -> Vec<DefaultRoute> {
    let h = &r.header;
    let ipv6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return Vec::new(),
    };
    if h.destination_prefix_length != 0 || h.kind != RouteType::Unicast {
        return Vec::new();
    }
    let mut table = u32::from(h.table);
    let mut oifs = Vec::new();
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oifs.push(*i),
            RouteAttribute::MultiPath(hops) => oifs.extend(hops.iter().map(|h| h.interface_index)),
            _ => {}
        }
    }
    oifs.into_iter()
        .map(|ifindex| DefaultRoute {
            ipv6,
            ifindex,
            table,
        })
        .collect()
}

fn read_rp_filter(conf: &str) -> Option<u8> {
    if conf.contains('/') || conf.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{conf}/rp_filter"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Sets `net.ipv4.conf.<interface>.rp_filter` to 2 (loose), as NetworkManager does for
/// links with MPTCP endpoints: the effective value is the larger of `all` and the
/// interface's own, so this is enough even when `all` is 1.
///
/// # Errors
/// When the sysctl cannot be written.
pub fn set_loose_rp_filter(interface: &str) -> io::Result<()> {
    if interface.contains('/') || interface.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{interface}/rp_filter"),
        "2",
    )
}

/// A subscription to link, address and route notifications.
#[derive(Debug)]
pub struct Watcher {
    sock: Socket,
}

impl Watcher {
    /// Subscribes, in the calling thread's network namespace.
    ///
    /// # Errors
    /// When the socket cannot be made or bound.
    pub fn open() -> io::Result<Watcher> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        sock.bind(&SocketAddr::new(0, groups))?;
        // Room for a burst (an interface coming up with several addresses and
        // routes); an overflow only costs a snapshot.
        let _ = sock.set_rx_buf_sz(1 << 20);
        sock.set_non_blocking(true)?;
        Ok(Watcher { sock })
    }

    /// Waits up to `timeout` for a notification that matters (a link, an address, a
    /// default route; other routes are ignored), and reads every queued one.
    /// `Ok(true)` when one came (or the queue overflowed and some were lost).
    ///
    /// # Errors
    /// When the socket fails.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if !wait_readable(&self.sock, timeout)? {
            return Ok(false);
        }
        let mut changed = false;
        loop {
            match self.sock.recv_from_full() {
                Ok((datagram, _)) if datagram.is_empty() => return Ok(changed),
                Ok((datagram, _)) => {
                    for raw in frames(&datagram) {
                        changed |= matters(raw);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(changed),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::debug!("rtnetlink notifications were lost: resyncing");
                    changed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a notification can change the plan.
fn matters(raw: &[u8]) -> bool {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
        Ok(m) => match m.payload {
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r),
            ) => r.header.destination_prefix_length == 0,
            NetlinkPayload::InnerMessage(_) => true,
            _ => false,
        },
        // Something the parser does not know: resync rather than miss a change.
        Err(_) => true,
    }
}

/// Waits until `fd` is readable or `timeout` passes; `Ok(false)` on timeout.
fn wait_readable(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_survive_garbage() {
        let mut d = Vec::new();
        for payload_len in [4usize, 6] {
            let len = 16 + payload_len;
            let mut m = (len as u32).to_ne_bytes().to_vec();
            m.resize(len, 0);
            m.resize(len.next_multiple_of(4), 0);
            d.extend(m);
        }
        let lens: Vec<usize> = frames(&d).map(<[u8]>::len).collect();
        assert_eq!(lens, [20, 22]);
        // Lengths that lie are dropped, not followed.
        for bad in [
            &[0xffu8; 20][..],
            &[1, 0, 0, 0][..],
            &[17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert!(frames(bad).count() <= 1);
        }
        assert!(matters(&[0u8; 3]));
    }

    #[test]
    fn snapshot_of_this_namespace_sees_loopback() {
        let host = Rtnl::open().unwrap().snapshot().unwrap();
        let lo = host
            .links
            .values()
            .find(|l| l.loopback)
            .expect("a loopback link");
        assert_eq!(lo.name, "lo");
        assert!(host
            .addresses
            .iter()
            .any(|a| a.ifindex == lo.index && a.address == IpAddr::from([127, 0, 0, 1])));
    }
}
