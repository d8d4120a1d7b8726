//! A server's subflows its peer has replaced.
//!
//! A client whose path fails closes its subflow over it and, once the path is back,
//! opens a new one between the same two addresses. When the path was dead, the
//! server never heard of the close (the RST was lost with the path), and a server
//! that has nothing to send on that subflow never finds out: it stays established
//! for the connection's life. Such a subflow keeps its place among the connection's
//! joins (the in-kernel path manager takes at most its `subflows` limit, 8 at most,
//! and refuses the rest: `MPJoinRejected`), and with DSS checksums on it can hold the
//! start of a mapping whose end will never come. The chaos soak's dumps held up to
//! 63 server connections at 8 subflows, one with five between the same two addresses;
//! a client whose paths come and go every few seconds opens new ones faster than a
//! slow rule frees them (with 15 s, still 135 connections at 8 in one dump).
//!
//! A subflow that carries traffic hears from its peer many times a second (data or
//! acknowledgements); one that heard nothing for 6 s while a sibling between the same
//! addresses heard within 2 s is not being used by the peer, which moved on.
//!
//! The rule: between the same two addresses, a subflow that has heard nothing from
//! the peer (no data, no acknowledgement) for [`SILENT_FOR`] while another one of the
//! same connection heard from it within [`SIBLING_HEARD_WITHIN`] was replaced; it is
//! reset (`SOCK_DESTROY`, as `ss -K`), which frees its place. Never on behalf of an
//! *older* sibling: a client that closed a subflow still drains the data queued on
//! it (FIN-WAIT-1 on its side, established on ours, heard), while the new one it
//! opened may wait out a retransmission timeout on a congested path; the soak's
//! 10-minute run reset such new subflows, which the client's in-kernel path manager
//! then never re-opened. Age is when the daemon first saw a subflow (its sweeps are
//! 2 s apart); subflows first seen in the same sweep (those open when it started)
//! count as the same age.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mptcp_netlink::{Connection, Subflow};

use crate::daemon::Report;

/// How long a replaced subflow has heard nothing from the peer.
pub(crate) const SILENT_FOR: Duration = Duration::from_secs(6);

/// How recently the subflow that replaced it heard from the peer.
pub(crate) const SIBLING_HEARD_WITHIN: Duration = Duration::from_secs(2);

/// How often a server looks for them.
pub(crate) const REAP_EVERY: Duration = Duration::from_secs(2);

/// A subflow another one replaced.
#[derive(Debug, Clone)]
pub(crate) struct Replaced {
    /// The connection's token.
    pub token: Option<u32>,
    /// The subflow to reset.
    pub subflow: Subflow,
    /// How long it has heard nothing from the peer.
    pub silent: Duration,
    /// The peer's end of the subflow that replaced it.
    pub by: SocketAddr,
}

/// How long `s` has heard nothing from the peer: the later of the last data and the
/// last acknowledgement received. `None` without `tcp_info`.
fn silence(s: &Subflow) -> Option<Duration> {
    s.tcp
        .as_ref()
        .map(|t| t.last_data_recv.min(t.last_ack_recv))
}

/// When each subflow was first seen, by cookie: what the rule knows of their ages.
#[derive(Debug, Default)]
pub(crate) struct Reaper {
    first_seen: HashMap<u64, Instant>,
}

impl Reaper {
    /// Resets the subflows of `conns` their peer replaced (with `dry_run`, only says
    /// so), one report each. One that is already gone (`ENOENT`) is not reported.
    pub(crate) fn reap(
        &mut self,
        now: Instant,
        conns: &[Connection],
        dry_run: bool,
        log: &mut dyn FnMut(Report),
    ) {
        let live: std::collections::HashSet<u64> = conns
            .iter()
            .flat_map(|c| c.subflows.iter().map(|s| s.cookie))
            .collect();
        self.first_seen.retain(|c, _| live.contains(c));
        for &c in &live {
            self.first_seen.entry(c).or_insert(now);
        }
        for r in replaced(conns, &self.first_seen) {
            let result = if dry_run {
                Ok(())
            } else {
                mptcp_netlink::abort_subflow(&r.subflow)
            };
            if matches!(&result, Err(e) if e.errno() == Some(libc::ENOENT)) {
                continue;
            }
            log(Report::SubflowReplaced {
                token: r.token,
                local: r.subflow.local,
                remote: r.subflow.remote,
                silent_ms: r.silent.as_millis() as u64,
                by: r.by,
                applied: !dry_run && result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            });
        }
    }
}

/// The subflows of `conns` that the peer replaced, by the rule of the module docs;
/// `first_seen` dates them (by cookie).
pub(crate) fn replaced(conns: &[Connection], first_seen: &HashMap<u64, Instant>) -> Vec<Replaced> {
    let mut out = Vec::new();
    for c in conns {
        let ends: Vec<Ends> = c
            .subflows
            .iter()
            .map(|s| Ends {
                local: s.local,
                remote: s.remote,
                silent: silence(s),
                seen: first_seen.get(&s.cookie).copied(),
            })
            .collect();
        for (i, by) in replaced_among(&ends) {
            out.push(Replaced {
                token: c.connection_token(),
                subflow: c.subflows[i].clone(),
                silent: ends[i].silent.unwrap_or_default(),
                by,
            });
        }
    }
    out
}

/// What the rule reads of a subflow.
#[derive(Debug, Clone, Copy)]
struct Ends {
    local: SocketAddr,
    remote: SocketAddr,
    /// How long it has heard nothing from the peer; `None`: unknown.
    silent: Option<Duration>,
    /// When it was first seen; `None`: unknown.
    seen: Option<Instant>,
}

/// The indexes of the replaced subflows among one connection's, each with the peer's
/// end of the subflow that replaced it.
fn replaced_among(subflows: &[Ends]) -> Vec<(usize, SocketAddr)> {
    subflows
        .iter()
        .enumerate()
        .filter(|(_, s)| s.silent.is_some_and(|q| q >= SILENT_FOR))
        .filter_map(|(i, s)| {
            subflows
                .iter()
                .enumerate()
                .filter(|&(j, o)| {
                    j != i && o.local.ip() == s.local.ip() && o.remote.ip() == s.remote.ip()
                })
                // Not on behalf of an older one.
                .filter(|(_, o)| !matches!((s.seen, o.seen), (Some(a), Some(b)) if a > b))
                .find(|(_, o)| o.silent.is_some_and(|q| q <= SIBLING_HEARD_WITHIN))
                .map(|(_, o)| (i, o.remote))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(local: &str, remote: &str, silent_s: Option<u64>) -> Ends {
        Ends {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            silent: silent_s.map(Duration::from_secs),
            seen: None,
        }
    }

    #[test]
    fn a_new_subflow_is_not_reaped_for_an_older_one_still_draining() {
        let t0 = Instant::now();
        let at = |s: u64| Some(t0 + Duration::from_secs(s));
        // The client closed 41000 (it still drains what was queued on it: heard) and
        // opened 42000, waiting out a retransmission timeout: silent, but newer.
        let mut old = ends("198.18.100.2:5124", "198.18.1.1:41000", Some(0));
        old.seen = at(0);
        let mut new = ends("198.18.100.2:5124", "198.18.1.1:42000", Some(10));
        new.seen = at(20);
        assert!(replaced_among(&[old, new]).is_empty());
        // The usual case, the old one silent and the new one heard: reaped; and one
        // first seen in the same sweep as its sibling counts as their age.
        let (mut old, mut new) = (old, new);
        old.silent = Some(Duration::from_secs(10));
        new.silent = Some(Duration::ZERO);
        let peer: SocketAddr = "198.18.1.1:42000".parse().unwrap();
        assert_eq!(replaced_among(&[old, new]), vec![(0, peer)]);
        new.seen = old.seen;
        assert_eq!(replaced_among(&[old, new]), vec![(0, peer)]);
    }

    #[test]
    fn a_silent_subflow_replaced_between_the_same_addresses_is_reaped() {
        let subflows = [
            // The initial subflow, busy.
            ends("198.18.100.2:5124", "198.18.0.1:40000", Some(0)),
            // Two over path 1 the client gave up on, and the one it opened since.
            ends("198.18.100.2:5124", "198.18.1.1:41000", Some(40)),
            ends("198.18.100.2:5124", "198.18.1.1:42000", Some(16)),
            ends("198.18.100.2:5124", "198.18.1.1:43000", Some(1)),
        ];
        let got = replaced_among(&subflows);
        let peer: SocketAddr = "198.18.1.1:43000".parse().unwrap();
        assert_eq!(got, vec![(1, peer), (2, peer)]);
    }

    #[test]
    fn nothing_is_reaped_without_a_sibling_that_hears_the_peer() {
        // An idle connection: every subflow silent, two between the same addresses.
        let idle = [
            ends("198.18.100.2:5124", "198.18.1.1:41000", Some(600)),
            ends("198.18.100.2:5124", "198.18.1.1:42000", Some(300)),
        ];
        assert!(replaced_among(&idle).is_empty());
        // A silent subflow alone on its addresses (another path is busy): the peer
        // did not replace it, maybe it is a backup.
        let alone = [
            ends("198.18.100.2:5124", "198.18.0.1:40000", Some(0)),
            ends("198.18.100.2:5124", "198.18.1.1:41000", Some(600)),
            ends("198.18.1.2:5124", "198.18.1.1:41001", Some(0)),
        ];
        assert!(replaced_among(&alone).is_empty());
        // Not silent long enough yet, or silence unknown (no tcp_info).
        let young = [
            ends("198.18.100.2:5124", "198.18.1.1:41000", Some(5)),
            ends("198.18.100.2:5124", "198.18.1.1:42000", None),
            ends("198.18.100.2:5124", "198.18.1.1:43000", Some(0)),
        ];
        assert!(replaced_among(&young).is_empty());
    }
}
