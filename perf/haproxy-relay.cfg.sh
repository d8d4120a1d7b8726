#!/usr/bin/env bash
# Prints the HAProxy configuration the benchmarks put beside `mptcp proxy
# --listen --to`: TCP mode, one thread, 5 min idle timeouts (the relay's
# default), a 4096 backlog, relaying 127.0.0.1:LISTEN_PORT to 127.0.0.1:UPSTREAM_PORT.
#   perf/haproxy-relay.cfg.sh LISTEN_PORT UPSTREAM_PORT MAXCONN > FILE
# (perf/hostile/run.sh, perf/proxy/idle_cpu.sh, perf/proxy/syscalls.sh)
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 LISTEN_PORT UPSTREAM_PORT MAXCONN" >&2; exit 2; }
cat <<CFG
global
    maxconn $3
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend relay
    bind 127.0.0.1:$1 backlog 4096
    default_backend upstream
backend upstream
    server s 127.0.0.1:$2
CFG
