#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ one after the other and prints a table of
# target, executions and result. Long-running, so it is not part of CI.
#
#   scripts/fuzz.sh                 60 seconds per target
#   scripts/fuzz.sh 600             600 seconds per target
#   scripts/fuzz.sh -runs=10000000  ten million executions per target
#   FUZZ_TARGETS="lexer_split meta_extract" scripts/fuzz.sh 30    a subset
#
# Needs the nightly toolchain (libFuzzer instrumentation) and a C++ compiler; installs
# cargo-fuzz when it is missing. New inputs go to fuzz/target/corpus/<target> (ignored by
# git); the committed seeds in fuzz/corpus/<target> are read, never written. A crash, hang
# or memory-limit breach leaves its input in fuzz/artifacts/<target>/ — minimise it with
# `cargo +nightly fuzz tmin <target> <file>` and keep it under fuzz/regressions/<target>/.
#
# Limits, per issue 7: no input may run longer than 1 s (-timeout=1), allocate more than
# 512 MiB at once or grow the process past 2 GiB (-rss_limit_mb). The targets are built
# without a sanitizer (`-s none`: pgmi-core has no unsafe code, and it runs 2-3 times
# faster), so libFuzzer's -malloc_limit_mb, which needs a sanitizer's malloc hooks, is
# backed by the capped allocator in fuzz/src/lib.rs; it is passed anyway for builds with one.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

budget=${1:-60}
case "$budget" in
    -runs=*) limit=("$budget") ;;
    *[!0-9]* | '') echo "usage: $0 [seconds-per-target | -runs=N]" >&2; exit 2 ;;
    *) limit=("-max_total_time=$budget") ;;
esac

TARGETS=${FUZZ_TARGETS:-"bundle_read meta_extract lexer_split params_file path_rules"}

# Tar headers are 512 bytes, so bundles need more room than text inputs to hold several
# entries; larger inputs only slow the text targets down without reaching new code.
max_len() {
    case "$1" in
        bundle_read) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo +nightly install cargo-fuzz --locked
fi

logs="$ROOT/fuzz/target/logs"
mkdir -p "$logs"
echo "==> building the fuzz targets" >&2
cargo +nightly fuzz build -s none >&2

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin="$ROOT/fuzz/target/$host/release"

rows=()
failed=0
for t in $TARGETS; do
    # Known reproducers first: each file runs once, and any failure stops the script.
    regressions=()
    if [ -d "fuzz/regressions/$t" ]; then
        mapfile -t regressions < <(find "fuzz/regressions/$t" -type f | sort)
    fi
    if [ "${#regressions[@]}" -gt 0 ]; then
        echo "==> replaying ${#regressions[@]} regression input(s) of $t" >&2
        "$bin/$t" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=512 "${regressions[@]}" >&2
    fi
    work="$ROOT/fuzz/target/corpus/$t"
    mkdir -p "$work" "$ROOT/fuzz/artifacts/$t"
    log="$logs/$t.log"
    echo "==> fuzzing $t (${limit[*]}); log in ${log#"$ROOT"/}" >&2
    start=$(date +%s)
    set +e
    cargo +nightly fuzz run -s none "$t" "$work" "fuzz/corpus/$t" -- \
        "${limit[@]}" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -max_len="$(max_len "$t")" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        # A crash skips the final stats; take the last progress line instead.
        execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    if [ "$rc" = 0 ]; then
        result=ok
    elif grep -q 'libFuzzer: timeout' "$log"; then
        result=TIMEOUT
    elif grep -q 'out-of-memory' "$log"; then
        result=OUT-OF-MEMORY
    else
        result=CRASH
    fi
    [ "$result" = ok ] || failed=1
    rows+=("$(printf '%-14s %14s %8s  %s' "$t" "${execs:-?}" "${secs}s" "$result")")
done

printf '%-14s %14s %8s  %s\n' target executions time result
for r in "${rows[@]}"; do
    echo "$r"
done
if [ "$failed" = 1 ]; then
    echo "reproducers are in fuzz/artifacts/<target>/; logs in fuzz/target/logs/" >&2
fi
exit "$failed"
