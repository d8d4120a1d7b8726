#!/usr/bin/env bash
# Linux 6.18 counts a `subflow laminar` endpoint again in a connection's
# `local_addr_used` each time it opens a subflow from it towards an address the
# peer announced (ADD_ADDR), even while the count already holds it; removing the
# endpoint takes only one back. Past `local_addr_max` the connection opens no
# subflow from any endpoint, not even after its endpoints are removed and added
# back (a re-arm).
#
# Why `mptcp pm run --role client` gives `subflow` alone (crates/mptcp-pm/src/lib.rs,
# "Flags"; the test `pm_client_endpoints_keep_the_kernels_count_through_announcements`
# in crates/mptcp-pm/tests/pm_userspace.rs; SOAK.md, "Endpoints counted twice").
#
# As root. Two namespaces joined by two veth paths (perf/two-path-netns.sh); the
# client's endpoints, 198.18.1.1 (the connection's first path) and 198.18.2.1, get
# FLAGS (set with the `mptcp` command, as Debian 12's iproute2 does not know
# `laminar`); the server announces 198.18.2.2. Three rounds: the client's subflows
# from 198.18.2.1 are reset (`ss -K`) and the server announces its address again;
# then a re-arm of 198.18.2.1. Prints the connection's counters after each step and
# whether the re-arm gave a subflow back.
#   perf/pm/laminar_count.sh ["subflow laminar" | "subflow" | "subflow fullmesh" ...]
#   (default: "subflow laminar" "subflow"); MPTCP=path/to/mptcp (default: built)
# Measured on 6.18: see the end of this file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=perf/two-path-netns.sh
. "$here/../two-path-netns.sh"
two_path_needs python3 ss
if [ -z "${MPTCP:-}" ]; then
    (cd "$here/../.." && cargo build --quiet -p mptcp-cli)
    MPTCP="$here/../../${CARGO_TARGET_DIR:-target}/debug/mptcp"
    [ -x "$MPTCP" ] || MPTCP="${CARGO_TARGET_DIR:-$here/../../target}/debug/mptcp"
fi
variants=("$@"); [ ${#variants[@]} -gt 0 ] || variants=("subflow laminar" "subflow")
counters() {
    "$MPTCP" --netns "$1" --json conns | python3 -c '
import json, sys
for c in json.load(sys.stdin)["connections"]:
    if c.get("remote", "").endswith(":5000"):
        pm = c["path_manager"]
        subs = sorted(s["local"].split(":")[0] + "->" + s["remote"].split(":")[0] for s in c["subflows"])
        print("local_addr_used %d of %d, add_addr_accepted %d, subflows: %s" % (
            pm["local_addr_used"], pm["local_addr_max"], pm["add_addr_accepted"], ", ".join(subs)))
'
}
run() {
    local flags=$1 c=lamc$$ s=lams$$ f args=()
    # shellcheck disable=SC2064
    trap "ip netns del $c 2>/dev/null || true; ip netns del $s 2>/dev/null || true" RETURN EXIT
    two_path_netns "$c" "$s"
    # Room for every announcement the rounds bring (the kernel does not give back an
    # accepted address whose subflow closed first): only local_addr_used limits.
    ip -n "$c" mptcp limits set subflows 8 add_addr_accepted 8
    for f in $flags; do args+=("--$f"); done
    "$MPTCP" --netns "$c" endpoint add 198.18.1.1 --id 1 --dev c1 "${args[@]}" >/dev/null
    "$MPTCP" --netns "$c" endpoint add 198.18.2.1 --id 2 --dev c2 "${args[@]}" >/dev/null
    ip -n "$s" mptcp endpoint add 198.18.2.2 id 2 signal
    ip netns exec "$s" python3 -c '
import socket, time
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 5000)); l.listen()
c, _ = l.accept(); c.recv(1); c.send(b"y"); time.sleep(30)' &
    sleep 0.3
    ip netns exec "$c" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect(("198.18.1.2", 5000)); s.send(b"x"); s.recv(1); time.sleep(30)' &
    sleep 1
    echo "== endpoints: $flags"
    echo "connected:            $(counters "$c")"
    for round in 1 2 3; do
        ip netns exec "$c" ss -K src 198.18.2.1 >/dev/null 2>&1 || true
        sleep 0.3
        ip -n "$s" mptcp endpoint delete id 2; sleep 0.3
        ip -n "$s" mptcp endpoint add 198.18.2.2 id 2 signal; sleep 0.7
        echo "round $round:              $(counters "$c")"
    done
    ip netns exec "$c" ss -K src 198.18.2.1 >/dev/null 2>&1 || true
    sleep 0.3
    "$MPTCP" --netns "$c" endpoint del --id 2 >/dev/null
    "$MPTCP" --netns "$c" endpoint add 198.18.2.1 --id 2 --dev c2 "${args[@]}" >/dev/null
    sleep 1
    local after; after=$(counters "$c")
    echo "re-armed 198.18.2.1:  $after"
    case "$after" in
        *198.18.2.1-\>*) echo "-> the re-arm gave a subflow back" ;;
        *) echo "-> no subflow from 198.18.2.1 after the re-arm" ;;
    esac
    kill %1 %2 2>/dev/null || true
    wait 2>/dev/null || true
}
for v in "${variants[@]}"; do run "$v"; done
# Measured on 6.18 (2026-12-07), one announced address, limits 8/8:
#   subflow laminar: local_addr_used 1, 2, 3, 4 of 2 over the rounds; after the
#     re-arm 3 of 2 and no subflow from 198.18.2.1.
#   subflow: 1 of 2 throughout; the re-arm opens 198.18.2.1 -> 198.18.1.2.
#   (add_addr_accepted grows by one a round in both: an accepted address whose
#   subflow closed first is not given back.)
