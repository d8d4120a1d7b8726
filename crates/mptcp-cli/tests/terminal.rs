//! Colour and screen handling: colour only on a terminal and never with NO_COLOR,
//! JSON never coloured, `conns --watch` redraws in place on a terminal only. A
//! terminal is faked with util-linux `script`.

mod common;

use std::process::Command;

use common::{mptcp, netns};

/// Runs `mptcp --netns <ns> args...` on a pseudo-terminal; its output.
fn on_a_terminal(ns: &str, args: &str, no_color: bool) -> String {
    let command = format!("{} --netns {ns} {args}", env!("CARGO_BIN_EXE_mptcp"));
    let mut script = Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script
        .output()
        .unwrap_or_else(|e| panic!("this test needs `script` (util-linux): {e}"));
    assert!(out.status.success(), "{command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ESC: char = '\x1b';

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let ns = netns("cli-colour");
    let ns = ns.name();
    assert!(on_a_terminal(ns, "limits show", false).contains(ESC));
    assert!(!on_a_terminal(ns, "limits show", true).contains(ESC));
    assert!(!on_a_terminal(ns, "--color never limits show", false).contains(ESC));
    // JSON on a terminal: no colour, still JSON.
    let json = on_a_terminal(ns, "--json limits show", false);
    assert!(!json.contains(ESC), "{json:?}");
    serde_json::from_str::<serde_json::Value>(&json).expect("JSON");

    // Into a pipe: plain, unless asked for.
    let piped = mptcp(ns, &["limits", "show"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&piped.stdout).contains(ESC));
    let forced = mptcp(ns, &["--color", "always", "limits", "show"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains(ESC));
}

#[test]
fn watch_redraws_in_place_on_a_terminal_only() {
    let ns = netns("cli-watch");
    let ns = ns.name();
    let clear = "\x1b[H\x1b[2J";
    let screen = on_a_terminal(ns, "conns --watch --count 2 --interval 0.1", true);
    assert_eq!(screen.matches(clear).count(), 2, "{screen:?}");
    assert_eq!(
        screen.matches("no MPTCP connections").count(),
        2,
        "{screen:?}"
    );
    let piped = mptcp(
        ns,
        &["conns", "--watch", "--count", "2", "--interval", "0.1"],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(!text.contains(ESC), "{text:?}");
    assert_eq!(text.matches("no MPTCP connections").count(), 2, "{text}");
}
