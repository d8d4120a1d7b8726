#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for N minutes in all (split evenly across the
# targets), under the nightly toolchain, and reports per target: executions, coverage
# (libFuzzer's final `cov:` and `ft:`), corpus size and crashes. Writes fuzz/RESULTS.md.
#
# Usage: fuzz/run.sh --minutes N [--sanitizer none|address] [--merge] [TARGET...]
#   --minutes N     total time (default 10); each target gets N*60/targets seconds
#   --sanitizer S   none (default: safe Rust, and about 2x the executions) or address
#   --merge         add the inputs that reached new coverage to fuzz/corpus/TARGET
#                   (libFuzzer -merge=1, so only inputs that add features are kept)
#   TARGET...       only these targets (default: every [[bin]] of fuzz/Cargo.toml)
# Environment: FUZZ_TARGET_DIR (build directory, default fuzz/target), FUZZ_LOCK (a
# file to flock around each cargo command, for a shared build machine).
#
# Builds are release with debug assertions (integer overflow panics). New inputs go to
# fuzz/target/.../work/TARGET (not the repository), crashes to fuzz/artifacts/TARGET/,
# logs to fuzz/logs/TARGET.log. A crash found: reproduce it with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# then fix it with a regression test in the crate, and add the file to fuzz/corpus/TARGET
# so the stable replay test (crates/mptcp-fuzz/tests/corpus.rs) keeps it fixed.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (rustup).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

minutes=10
sanitizer=none
merge=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=$2; shift 2 ;;
        --minutes=*) minutes=${1#*=}; shift ;;
        --sanitizer) sanitizer=$2; shift 2 ;;
        --sanitizer=*) sanitizer=${1#*=}; shift ;;
        --merge) merge=1; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "fuzz/run.sh: --minutes takes a number, not '$minutes'" >&2
    exit 2
fi
all=$(sed -n '/^\[\[bin\]\]/,/^name/s/^name = "\(.*\)"/\1/p' Cargo.toml)
if [ ${#targets[@]} -eq 0 ]; then
    read -r -a targets <<<"$(echo $all)"
fi
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$all"; then
        echo "fuzz/run.sh: no target '$t' (targets: $(echo $all))" >&2
        exit 2
    fi
done
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing (cargo install cargo-fuzz)" >&2
    exit 1
fi

target_dir=${FUZZ_TARGET_DIR:-$here/target}
locked() {
    if [ -n "${FUZZ_LOCK:-}" ]; then flock "$FUZZ_LOCK" "$@"; else "$@"; fi
}
seconds=$(awk -v m="$minutes" -v n="${#targets[@]}" 'BEGIN { s = int(m * 60 / n); print (s < 1 ? 1 : s) }')
flags=(--release --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir")

echo "fuzz/run.sh: ${#targets[@]} targets, ${seconds}s each, sanitizer $sanitizer"
locked cargo +nightly fuzz build "${flags[@]}" >&2

mkdir -p logs artifacts
rows=()
total_execs=0
total_crashes=0
for t in "${targets[@]}"; do
    work="$target_dir/work/$t"
    mkdir -p "$work" "artifacts/$t" "corpus/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    extra=()
    # HTTP CONNECT heads go up to 8 KiB: let inputs pass the bound.
    [ "$t" = http_connect ] && extra+=(-max_len=9000)
    # The configuration files: their keys and edge values as a dictionary.
    case "$t" in pm_toml | proxy_toml) extra+=(-dict="$here/toml.dict") ;; esac
    echo "== $t: ${seconds}s" >&2
    set +e
    locked cargo +nightly fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${extra[@]+"${extra[@]}"} >"logs/$t.log" 2>&1
    rc=$?
    set -e
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ $rc -ne 0 ] && [ $crashes -eq 0 ]; then
        crashes=1 # stopped without leaving a file: see the log
    fi
    # The last status line: "#N <event> cov: C ft: F corp: K/Sb ...".
    status=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1 || true)
    execs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "logs/$t.log" | awk '{ print $2 }' | tail -n 1 || true)
    [ -n "$execs" ] || execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$status")
    cov=$(grep -oE 'cov: [0-9]+' <<<"$status" | awk '{ print $2 }' || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$status" | awk '{ print $2 }' || true)
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$status" | awk '{ print $2 }' || true)
    secs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "logs/$t.log" | awk '{ print $5 }' | tail -n 1 || true)
    [ -n "$secs" ] || secs=$seconds
    if [ $merge -eq 1 ] && [ $crashes -eq 0 ]; then
        locked cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" "$work" -- \
            -merge=1 -timeout=10 -rss_limit_mb=2048 ${extra[@]+"${extra[@]}"} >"logs/$t.merge.log" 2>&1 ||
            echo "fuzz/run.sh: merging $t failed, see fuzz/logs/$t.merge.log" >&2
    fi
    printf '%-16s execs %-10s cov %-6s ft %-6s corpus %-12s crashes %s\n' \
        "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
    rows+=("| \`$t\` | ${secs} | ${execs:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes |")
    total_execs=$((total_execs + ${execs:-0}))
    total_crashes=$((total_crashes + crashes))
done

{
    echo "# Fuzzing results"
    echo
    echo "Written by \`fuzz/run.sh --minutes $minutes\` on $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "($(rustc +nightly --version | cut -d' ' -f1-2), cargo-fuzz $(cargo fuzz --version | awk '{ print $2 }'),"
    echo "sanitizer \`$sanitizer\`, release with debug assertions, commit"
    echo "\`$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)\`, $(nproc) CPUs, one job per target)."
    echo "Each target started from its corpus in \`fuzz/corpus/\`. \`cov\` and \`ft\` are libFuzzer's"
    echo "final counts of covered edges and of features (edge and counter combinations);"
    echo "\`corpus\` is the number of inputs / bytes libFuzzer kept at the end."
    echo
    echo "| target | seconds | executions | cov | ft | corpus | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Total: $total_execs executions, $total_crashes crashes."
} >RESULTS.md
echo "fuzz/run.sh: $total_execs executions, $total_crashes crashes; wrote fuzz/RESULTS.md"
[ $total_crashes -eq 0 ]
