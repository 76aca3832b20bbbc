#!/usr/bin/env bash
# Differential test of the deploy.sql splitter (pgmi-core/src/split.rs, lexer/postgres.rs)
# against PostgreSQL's own scanner and parser, compiled in through the pg_query crate
# (libpg_query). Not part of CI: a cold build of libpg_query took 3 min 23 s on an idle
# 2-core machine; the default run itself (200,027 scripts) then takes about 30 s.
#
#   scripts/differential.sh              200,000 generated scripts plus the hand-written ones
#   scripts/differential.sh 1000000      another count
#   scripts/differential.sh --record     rewrite pgmi-core/tests/differential/postgres.jsonl,
#                                        the answers the CI test replays (after changing the
#                                        corpus in pgmi-core/tests/differential/common.rs)
#
# Needs a C compiler and libclang (bindgen), both from the distribution's packages.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/scripts/differential"

if [ "${1:-}" = "--record" ]; then
    cargo run -q --release -- --record "$ROOT/pgmi-core/tests/differential/postgres.jsonl"
else
    cargo run -q --release -- --count "${1:-200000}"
fi
