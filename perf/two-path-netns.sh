# Sourced by the perf scripts that need two bare hosts (no Rust, no
# mptcp-testnet): `two_path_netns CLIENT SERVER` creates the namespaces CLIENT
# and SERVER joined by two veth paths, c1/s1 (198.18.1.1 and .2/24) and c2/s2
# (198.18.2.0/24), loopbacks up, MPTCP limits 2 subflows / 2 accepted
# addresses on both. The caller deletes the namespaces.
# `two_path_needs TOOL...` first: exits with a message unless root with every TOOL.
two_path_needs() {
    [ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
    local tool
    for tool in ip "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is missing (apt install python3 iptables iproute2)" >&2; exit 1; }
    done
}
two_path_netns() {
    local c=$1 s=$2 i
    ip netns add "$c"; ip netns add "$s"
    for i in 1 2; do
        ip link add "c$i" netns "$c" type veth peer "s$i" netns "$s"
        ip -n "$c" addr add "198.18.$i.1/24" dev "c$i"; ip -n "$s" addr add "198.18.$i.2/24" dev "s$i"
        ip -n "$c" link set "c$i" up; ip -n "$s" link set "s$i" up
    done
    ip -n "$c" link set lo up; ip -n "$s" link set lo up
    ip netns exec "$c" ip mptcp limits set subflows 2 add_addr_accepted 2
    ip netns exec "$s" ip mptcp limits set subflows 2 add_addr_accepted 2
}
