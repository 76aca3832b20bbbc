#!/usr/bin/env bash
# Benchmarks (not tests: timings on shared machines are reported, never asserted).
#   load  - project load, extension and portable sessions, vs a plain binary COPY of the
#           same bytes (1,000 and 10,000 files)
#   tests - pgmi_test per-test overhead, both session kinds, vs a plain PL/pgSQL loop
#           (1,000 tests)
#   deploy - whole `pgmi-upload deploy` processes, both session kinds, vs psql floors: a
#           no-op deploy of 10,000 files vs psql `\copy` of the same files into a temp
#           table, a one-file deploy vs `psql -X -f`, the backend's peak RssAnon vs the
#           project's size, and the phases (issue 10); then the one-file deploy and
#           `psql -X -f` over TCP through a loopback link that delays each direction by
#           LINK_DELAY_MS (default 5), with the round trips each made; and two context
#           baselines: tar reading the 10,000 files (÷ the \copy floor), psql creating the
#           session objects before the one-file SQL (÷ psql -f)
#   large  - the deploy benchmark at 10,000 and 100,000 files of 5 KB (500 MB; minutes,
#           and 1.5 GB of disk in the temporary directory)
# Builds and installs the extension in release mode first; ./scripts/test.sh puts the
# debug build back.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
ensure_cargo_pgrx
ensure_server
install_extension --release
cargo build -q --release -p pgmi-tests --bins
cargo build -q --release -p pgmi-upload
which=${1:-all}
if [ "$which" = all ] || [ "$which" = load ]; then "$ROOT/target/release/bench-load"; echo; fi
if [ "$which" = all ] || [ "$which" = tests ]; then "$ROOT/target/release/bench-tests"; echo; fi
if [ "$which" = all ] || [ "$which" = deploy ]; then "$ROOT/target/release/bench-deploy"; fi
if [ "$which" = large ]; then
    "$ROOT/target/release/bench-deploy" 10000 5000 3
    echo
    "$ROOT/target/release/bench-deploy" 100000 5000 1
fi
