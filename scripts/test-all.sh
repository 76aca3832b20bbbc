#!/usr/bin/env bash
# Runs the whole suite (scripts/test.sh) against every PostgreSQL major pgmi supports, one
# after the other, and prints a table of major × result. Each major's server comes from the
# distribution where it has it and from a PyPI tree otherwise (scripts/lib.sh); a server this
# script started is stopped again. Logs: target/test-all/pgN.log.
#
#   scripts/test-all.sh            # 13 14 15 16 17 18
#   scripts/test-all.sh 13 18      # only these
#
# Not part of CI (CI runs the default major): building pgrx and the extension for a new
# major takes minutes, and then the suite about two minutes per major on two cores. The
# tests want port 5432, so the local servers running before are stopped while it runs and
# started again at the end.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=(13 14 15 16 17 18)
logs="$ROOT/target/test-all"
mkdir -p "$logs"

# Run a lib.sh function for one major: on_major N FUNCTION.
on_major() { PG_MAJOR=$1 bash -c 'source "$0/scripts/lib.sh"; '"$2" "$ROOT"; }

# The tests expect their server on port 5432, so one runs at a time: the servers running
# now are stopped for the duration and started again at the end.
running=()
for major in 13 14 15 16 17 18; do
    if on_major "$major" server_running; then
        running+=("$major")
        on_major "$major" stop_server
    fi
done

results=()
for major in "${majors[@]}"; do
    printf '==> PostgreSQL %s (log: %s)\n' "$major" "target/test-all/pg$major.log" >&2
    start=$(date +%s)
    if PG_MAJOR=$major "$ROOT/scripts/test.sh" >"$logs/pg$major.log" 2>&1; then
        result=passed
    else
        failed=$(grep -c '^test .* FAILED$' "$logs/pg$major.log")
        result="FAILED ($failed tests)"
    fi
    secs=$(($(date +%s) - start))
    version=$(sed -n 's/.*server: PostgreSQL \([0-9][0-9.]*\).*/\1/p' "$logs/pg$major.log" | head -n 1)
    on_major "$major" 'if server_running; then stop_server; fi'
    results+=("$(printf '| %-5s | %-8s | %-22s | %5s s |' "$major" "${version:-?}" "$result" "$secs")")
done

# Below the floor: PostgreSQL 11 in a throw-away cluster (socket only), which pgmi-upload
# must refuse with exit 10 and the supported range.
floor_check() {
    source "$ROOT/scripts/lib.sh"
    local bindir base out rc=0
    bindir=$("$(as_root bash "$ROOT/scripts/pg-trees.sh" 11 "$PGMI_PG_DIR")" --bindir)
    base=$(mktemp -d)
    chmod 0755 "$base"
    chown postgres: "$base" 2>/dev/null || as_root chown postgres: "$base"
    as_postgres "$bindir/initdb" -D "$base/data" --no-sync -A trust -U "$(id -un)" >/dev/null
    as_postgres env -i PATH=/usr/bin:/bin "$bindir/pg_ctl" start -w -D "$base/data" -l "$base/log" \
        -o "-c listen_addresses= -c unix_socket_directories=$base -p 5411" >/dev/null
    mkdir -p "$base/project" && echo 'SELECT 1;' >"$base/project/deploy.sql"
    out=$("$ROOT/target/debug/pgmi-upload" deploy "$base/project" -h "$base" -p 5411 -d postgres 2>&1) || rc=$?
    as_postgres "$bindir/pg_ctl" stop -w -D "$base/data" -m fast >/dev/null
    as_root rm -rf "$base"
    printf '%s\n' "$out" >"$logs/pg11.log"
    [ "$rc" = 10 ] && grep -q 'PostgreSQL 11.13' <<<"$out" && grep -q '13 to 18' <<<"$out"
}
printf '==> PostgreSQL 11, below the floor (log: target/test-all/pg11.log)\n' >&2
(cd "$ROOT" && cargo build -q -p pgmi-upload)
if (floor_check) >/dev/null 2>&1; then
    result="refused, exit 10"
else
    result="FAILED (not refused)"
fi
results+=("$(printf '| %-5s | %-8s | %-22s | %7s |' 11 11.13 "$result" "")")

for major in "${running[@]}"; do
    on_major "$major" ensure_server
done

printf '\n| major | server   | result                 | time    |\n'
printf '|-------|----------|------------------------|---------|\n'
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAILED
