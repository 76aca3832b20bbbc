#!/usr/bin/env bash
# Runs the fault-injection scenarios of tests/tests/faults.rs many times each and prints a
# table of scenario, runs and passes, then checks every server log the runs produced for a
# crash. Long-running (about 2 s per run and scenario), so it is not part of CI, where the
# same tests run twice each.
#
#   scripts/faults.sh          20 runs of each scenario
#   scripts/faults.sh 100      100 runs of each scenario
#
# Each scenario runs on a throw-away cluster (tests/src/cluster.rs) whose log the tests
# copy into a temporary directory (PGMI_FAULT_LOG_DIR); a line with "terminated by signal"
# or "PANIC" there is a server crash and fails the script. Exits non-zero if any run failed.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

runs=${1:-20}
case "$runs" in
    *[!0-9]* | '' | 0) echo "usage: $0 [runs-per-scenario]" >&2; exit 2 ;;
esac

logs=$(mktemp -d)
out=$(mktemp)
trap 'rm -rf "$logs" "$out"' EXIT

cargo build -q -p pgmi-upload
started=$(date +%s)
status=0
PGMI_FAULT_RUNS=$runs PGMI_FAULT_LOG_DIR=$logs \
    cargo test -q -p pgmi-tests --test faults -- --nocapture >"$out" 2>&1 || status=$?
elapsed=$(( $(date +%s) - started ))

# One line per run: `FAULT <scenario> run=<i> pass|FAIL <summary>` (cargo may print a
# progress dot in front of it).
printf '%-18s %6s %6s  %s\n' scenario runs pass 'last summary'
for scenario in backend_killed client_killed connection_cut server_restarted concurrent; do
    lines=$(grep -o "FAULT $scenario run=.*" "$out" || true)
    total=$(printf '%s' "$lines" | grep -c . || true)
    passed=$(printf '%s\n' "$lines" | grep -c " pass " || true)
    last=$(printf '%s\n' "$lines" | tail -n 1 | sed -E 's/^FAULT [a-z_]+ run=[0-9]+ (pass|FAIL) //')
    printf '%-18s %6s %6s  %s\n' "$scenario" "$total" "$passed" "$last"
done
echo "wall time: ${elapsed}s"

if grep -q " FAIL " "$out"; then
    echo
    echo "failed runs:"
    grep -o "FAULT [a-z_]* run=[0-9]* FAIL.*" "$out"
fi

crashes=$(grep -hE 'terminated by signal|PANIC' "$logs"/*.log 2>/dev/null || true)
if [ -n "$crashes" ]; then
    echo
    echo "server crashes in the logs:"
    printf '%s\n' "$crashes"
    status=1
else
    echo "server logs: $(ls "$logs" | wc -l) checked, no crash"
fi

if [ "$status" -ne 0 ]; then
    echo
    tail -n 40 "$out"
fi
exit "$status"
