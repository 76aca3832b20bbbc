#!/usr/bin/env bash
# Benchmarks (not tests: timings on shared machines are reported, never asserted).
#   load  - project load, extension and portable sessions, vs a plain binary COPY of the
#           same bytes (1,000 and 10,000 files)
#   tests - pgmi_test per-test overhead, both session kinds, vs a plain PL/pgSQL loop
#           (1,000 tests)
# Builds and installs the extension in release mode first; ./scripts/test.sh puts the
# debug build back.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
ensure_cargo_pgrx
ensure_server
install_extension --release
cargo build -q --release -p pgmi-tests --bins
which=${1:-all}
if [ "$which" = all ] || [ "$which" = load ]; then "$ROOT/target/release/bench-load"; echo; fi
if [ "$which" = all ] || [ "$which" = tests ]; then "$ROOT/target/release/bench-tests"; fi
