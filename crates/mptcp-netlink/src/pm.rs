//! The blocking [`PathManager`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use crate::codec::framing::Op;
use crate::codec::{Endpoint, EndpointFlags, InterfaceRef, Limits, NewEndpoint, NewSubflow};
use crate::ops::{self, FamilyInfo};
use crate::socket::NlSocket;
use crate::Error;

/// A handle on the kernel's MPTCP path manager (generic netlink family `mptcp_pm`) of one
/// network namespace: the namespace of the thread that opened it, for its whole life.
///
/// Every method is one request and its answer (two for
/// [`add_endpoint`](Self::add_endpoint) and
/// [`delete_endpoint_by_address`](Self::delete_endpoint_by_address)); arguments are
/// checked before anything is sent ([`Error::Invalid`]). Writes need `CAP_NET_ADMIN`
/// ([`Error::PermissionDenied`]). The handle is `Send` and `Sync`; requests from several
/// threads are serialized.
///
/// ```no_run
/// use mptcp_netlink::{EndpointFlags, Limits, NewEndpoint, PathManager};
///
/// let pm = PathManager::open()?;
/// pm.set_limits(Limits { subflows: 2, add_addr_accepted: 2 })?;
/// let ep = pm.add_endpoint(
///     &NewEndpoint::new("198.18.1.1".parse()?).flags(EndpointFlags::SUBFLOW).interface("eth1"),
/// )?;
/// println!("added {ep}");
/// for ep in pm.endpoints()? {
///     println!("{ep}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PathManager {
    sock: Mutex<NlSocket>,
    family: FamilyInfo,
}

impl PathManager {
    /// Opens a generic netlink socket in the calling thread's network namespace and
    /// resolves the `mptcp_pm` family.
    ///
    /// # Errors
    /// [`Error::FamilyNotFound`] on a kernel without MPTCP; [`Error::Io`] if the socket
    /// cannot be opened.
    pub fn open() -> Result<Self, Error> {
        let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_GENERIC)?;
        let family = sock.run(ops::resolve_family()).map_err(family_error)?;
        tracing::debug!(
            family_id = family.id,
            version = family.version,
            "mptcp_pm resolved"
        );
        Ok(PathManager {
            sock: Mutex::new(sock),
            family,
        })
    }

    /// The numeric id of the `mptcp_pm` family in this kernel.
    pub fn family_id(&self) -> u16 {
        self.family.id
    }

    /// The family's version (1 on every kernel so far).
    pub fn family_version(&self) -> u32 {
        self.family.version
    }

    fn run<R>(&self, op: Op<R>) -> Result<R, Error> {
        // A panic while holding the lock leaves the socket usable: the sequence numbers
        // make a half-read answer harmless.
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.run(op)
    }

    fn with_fd<R>(&self, f: impl FnOnce(&netlink_sys::Socket) -> R) -> R {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        f(sock.socket())
    }

    fn ifindex(&self, interface: &Option<InterfaceRef>) -> Result<Option<u32>, Error> {
        self.with_fd(|fd| resolve_ifindex(fd, interface))
    }

    fn name_interfaces(&self, endpoints: &mut [Endpoint]) {
        self.with_fd(|fd| name_interfaces(fd, endpoints))
    }

    /// Adds an endpoint (`ip mptcp endpoint add`), and returns it as the kernel stored it,
    /// with its id.
    ///
    /// # Errors
    /// [`Error::Invalid`] for what [`NewEndpoint::validate`] refuses; [`Error::Exists`]
    /// for an address (or id) already in use; [`Error::PermissionDenied`]; an
    /// [`Error::Kernel`] with the kernel's reason otherwise (e.g. more than 8 endpoints,
    /// or a `signal` endpoint with a port on an address this host does not have).
    pub fn add_endpoint(&self, endpoint: &NewEndpoint) -> Result<Endpoint, Error> {
        endpoint.validate()?;
        let ifindex = self.ifindex(&endpoint.interface)?;
        self.run(ops::add_endpoint(self.family.id, endpoint, ifindex)?)?;
        find_added(self.endpoints()?, endpoint)
    }

    /// Lists the endpoints (`ip mptcp endpoint show`), in the kernel's order.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        let mut endpoints = self.run(ops::list_endpoints(self.family.id))?;
        self.name_interfaces(&mut endpoints);
        Ok(endpoints)
    }

    /// Gets the endpoint with `id` (`ip mptcp endpoint show id ID`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; [`Error::Invalid`] for id 0.
    pub fn endpoint(&self, id: u8) -> Result<Endpoint, Error> {
        let mut ep = self.run(ops::get_endpoint(self.family.id, id)?)?;
        self.name_interfaces(std::slice::from_mut(&mut ep));
        Ok(ep)
    }

    /// Deletes the endpoint with `id` (`ip mptcp endpoint delete id ID`); subflows using
    /// its address are closed and the address is withdrawn from peers.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; [`Error::Invalid`] for id 0.
    pub fn delete_endpoint(&self, id: u8) -> Result<(), Error> {
        self.run(ops::delete_endpoint(self.family.id, id)?)
    }

    /// Deletes the endpoint(s) for `address` (any port) and returns them: the kernel
    /// deletes by id, so this looks the ids up first.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no endpoint has this address.
    pub fn delete_endpoint_by_address(&self, address: IpAddr) -> Result<Vec<Endpoint>, Error> {
        let matching = with_address(self.endpoints()?, address)?;
        for ep in &matching {
            self.delete_endpoint(ep.id)?;
        }
        Ok(matching)
    }

    /// Deletes every endpoint (`ip mptcp endpoint flush`).
    pub fn flush_endpoints(&self) -> Result<(), Error> {
        self.run(ops::flush_endpoints(self.family.id))
    }

    /// Sets the `backup` and `fullmesh` flags of endpoint `id` to those in `flags` (`ip
    /// mptcp endpoint change id ID [no]backup [no]fullmesh`): both are set as given, so
    /// pass the endpoint's current `fullmesh` to change only `backup`. Subflows from the
    /// endpoint's address are told (MP_PRIO).
    ///
    /// # Errors
    /// [`Error::Invalid`] for another flag (only these two can change); the kernel's
    /// [`Error::Kernel`] `EINVAL` for `fullmesh` on a `signal` endpoint.
    pub fn set_endpoint_flags(&self, id: u8, flags: EndpointFlags) -> Result<(), Error> {
        self.run(ops::set_endpoint_flags(self.family.id, id, flags)?)
    }

    /// Reads the limits (`ip mptcp limits show`).
    pub fn limits(&self) -> Result<Limits, Error> {
        self.run(ops::get_limits(self.family.id))
    }

    /// Sets both limits (`ip mptcp limits set subflows N add_addr_accepted M`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a value above [`MAX_LIMIT`](crate::MAX_LIMIT).
    pub fn set_limits(&self, limits: Limits) -> Result<(), Error> {
        self.run(ops::set_limits(self.family.id, limits)?)
    }

    /// Userspace path manager: announces a local address with id `id` (1-255) to the peer
    /// of connection `token` (ADD_ADDR), optionally with a port.
    ///
    /// Needs `net.mptcp.path_manager=userspace` (or `pm_type=1`) when the connection was
    /// made; the kernel answers [`Error::Kernel`] `EINVAL` otherwise or for an unknown
    /// token.
    pub fn announce(
        &self,
        token: u32,
        id: u8,
        address: IpAddr,
        port: Option<u16>,
    ) -> Result<(), Error> {
        self.run(ops::announce(self.family.id, token, id, address, port)?)
    }

    /// Userspace path manager: withdraws the local address `id` from connection `token`
    /// (RM_ADDR) and closes the subflows that use it.
    pub fn remove(&self, token: u32, id: u8) -> Result<(), Error> {
        self.run(ops::remove(self.family.id, token, id))
    }

    /// Userspace path manager: opens a subflow of connection `token` from `local` (port 0
    /// for any) to `remote`, with local address id `local_id` (1-255).
    ///
    /// # Errors
    /// [`Error::Invalid`] for id 0, mixed families or a remote without a port; the
    /// kernel's error if the connect fails.
    pub fn create_subflow(
        &self,
        token: u32,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), Error> {
        self.open_subflow(token, &NewSubflow::new(local_id, local, remote))
    }

    /// Userspace path manager: opens a subflow of connection `token` as `subflow` says,
    /// bound to an interface and as a backup if asked.
    ///
    /// # Errors
    /// As for [`create_subflow`](Self::create_subflow).
    pub fn open_subflow(&self, token: u32, subflow: &NewSubflow) -> Result<(), Error> {
        self.run(ops::create_subflow(self.family.id, token, subflow)?)
    }

    /// Userspace path manager: closes the subflow of connection `token` between `local`
    /// and `remote` (both with their ports).
    ///
    /// # Errors
    /// [`Error::Kernel`] `ESRCH` when no subflow matches.
    pub fn destroy_subflow(
        &self,
        token: u32,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), Error> {
        self.run(ops::destroy_subflow(self.family.id, token, local, remote)?)
    }

    /// Userspace path manager: marks the subflow between `local` and `remote` of
    /// connection `token` as backup or not (MP_PRIO).
    pub fn set_subflow_backup(
        &self,
        token: u32,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<(), Error> {
        self.run(ops::set_subflow_backup(
            self.family.id,
            token,
            local,
            remote,
            backup,
        )?)
    }
}

/// Resolves an interface in the namespace of `fd` (`SIOCGIFINDEX` on it).
pub(crate) fn resolve_ifindex(
    fd: &netlink_sys::Socket,
    interface: &Option<InterfaceRef>,
) -> Result<Option<u32>, Error> {
    match interface {
        None => Ok(None),
        Some(InterfaceRef::Index(i)) => Ok(Some(*i)),
        Some(InterfaceRef::Name(name)) => rustix::net::netdevice::name_to_index(fd, name)
            .map(Some)
            .map_err(|e| {
                if e == rustix::io::Errno::NODEV {
                    Error::NotFound {
                        op: "add endpoint",
                        message: Some(format!("no interface named {name:?} in this namespace")),
                    }
                } else {
                    Error::io("cannot resolve the interface name", e.into())
                }
            }),
    }
}

/// Fills in the interface names of `endpoints`, from the namespace of `fd`.
pub(crate) fn name_interfaces(fd: &netlink_sys::Socket, endpoints: &mut [Endpoint]) {
    for ep in endpoints.iter_mut() {
        if let Some(index) = ep.ifindex {
            ep.interface = rustix::net::netdevice::index_to_name(fd, index).ok();
        }
    }
}

/// The endpoint the kernel made of `endpoint` (ADD_ADDR does not answer with it).
pub(crate) fn find_added(
    mut all: Vec<Endpoint>,
    endpoint: &NewEndpoint,
) -> Result<Endpoint, Error> {
    let pos = all
        .iter()
        .position(|e| match endpoint.id {
            Some(id) => e.id == id,
            None => e.address == endpoint.address && e.port == endpoint.port,
        })
        .ok_or_else(|| Error::NotFound {
            op: "add endpoint",
            message: Some(format!(
                "the kernel accepted {} but does not list it",
                endpoint.address
            )),
        })?;
    Ok(all.swap_remove(pos))
}

/// The endpoints with `address`; [`Error::NotFound`] if none.
pub(crate) fn with_address(all: Vec<Endpoint>, address: IpAddr) -> Result<Vec<Endpoint>, Error> {
    let matching: Vec<Endpoint> = all.into_iter().filter(|e| e.address == address).collect();
    if matching.is_empty() {
        return Err(Error::NotFound {
            op: "delete endpoint",
            message: Some(format!("no endpoint has address {address}")),
        });
    }
    Ok(matching)
}

/// nlctrl answers `ENOENT` for a family it does not know.
pub(crate) fn family_error(e: Error) -> Error {
    match e {
        Error::NotFound { .. } => Error::FamilyNotFound,
        other => other,
    }
}
