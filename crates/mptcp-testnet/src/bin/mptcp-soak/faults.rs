//! Carries out the schedule at its times, logging what was done when.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use mptcp_testnet::soak::{Action, Schedule, Side, SOAK_PATHS};

use crate::daemons::Daemons;
use crate::net::{self, SoakNet};
use crate::{pm_name, work, Timeline};

pub fn run(
    schedule: &Schedule,
    net: &SoakNet,
    daemons: &mut Daemons,
    timeline: &Mutex<Timeline>,
    start: Instant,
) -> Result<(), String> {
    for event in &schedule.events {
        let at = start + event.at;
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t0 = Instant::now();
        apply(event.action, net, daemons).map_err(|e| format!("{:?}: {e}", event.action))?;
        eprintln!(
            "mptcp-soak: {:>7.1} s  {:?}",
            (t0 - start).as_secs_f64(),
            event.action
        );
        // Ends are logged once done (a restarted proxy listens), starts when begun.
        let when = match event.action {
            Action::RestartProxy | Action::PathUp(_) | Action::AddrAdd(_) | Action::BlackoutEnd => {
                Instant::now()
            }
            _ => t0,
        };
        timeline
            .lock()
            .expect("timeline")
            .events
            .push((when, event.action));
    }
    Ok(())
}

fn apply(action: Action, net: &SoakNet, daemons: &mut Daemons) -> Result<(), String> {
    match action {
        Action::PathDown(p) => net.path(p, false),
        Action::PathUp(p) => net.path(p, true),
        Action::AddrRemove(p) => net.addr(p, false),
        Action::AddrAdd(p) => net.addr(p, true),
        Action::BlackoutStart => (0..SOAK_PATHS).try_for_each(|p| net.path(p, false)),
        Action::BlackoutEnd => (0..SOAK_PATHS).try_for_each(|p| net.path(p, true)),
        Action::Rate(p, mbit) => net.rate(p, mbit),
        Action::KillPm(side) => daemons.stop(pm_name(side), "KILL"),
        Action::RestartPm(side) => daemons.pm_restart(side),
        Action::KillProxy => daemons.stop("proxy-server", "KILL"),
        Action::RestartProxy => {
            daemons.spawn("proxy-server")?;
            work::wait_port(
                net.tn.server().netns(),
                SocketAddr::from(([127, 0, 0, 1], net::SERVER_PROXY)),
            )
        }
        Action::StripOn => net.strip(true),
        Action::StripOff => net.strip(false),
        Action::PmMode(userspace) => {
            for side in [Side::Client, Side::Server] {
                daemons.stop(pm_name(side), "TERM")?;
            }
            daemons.userspace = userspace;
            for side in [Side::Client, Side::Server] {
                daemons.spawn(pm_name(side))?;
            }
            Ok(())
        }
    }
}
