//! The server side of every policy but `single`: each usable path's address is
//! announced (ADD_ADDR) to the client, and a path that goes is withdrawn (RM_ADDR).

use super::{Command, Conn, Decision, LocalPath};

/// The announcements and withdrawals that bring `c` in step with `family`, its
/// address family's usable paths.
pub(super) fn announce(c: &mut Conn, token: u32, family: &[&LocalPath]) -> Vec<Decision> {
    let mut out = Vec::new();
    for p in family {
        if p.address != c.local.ip() && !c.announced.contains_key(&p.id) {
            c.announced.insert(p.id, p.address);
            out.push(Decision {
                command: Command::Announce {
                    token,
                    id: p.id,
                    address: p.address,
                },
                reason: format!("server side, {}: announce {}", c.policy, p.interface),
            });
        }
    }
    let withdrawn: Vec<u8> = c
        .announced
        .keys()
        .filter(|id| !family.iter().any(|p| p.id == **id))
        .copied()
        .collect();
    for id in withdrawn {
        c.announced.remove(&id);
        out.push(Decision {
            command: Command::Remove { token, id },
            reason: "its path is no longer usable".into(),
        });
    }
    out
}
