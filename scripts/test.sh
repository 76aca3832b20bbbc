#!/usr/bin/env bash
# Quick start, command 2: run every test. Unit tests of pgmi-core and pgmi-upload, the
# extension's #[pg_test]s (in a throw-away cluster pgrx starts as user postgres), then the
# live-server tests in tests/ that drive the real pgmi-upload binary against the real
# extension installed in the local cluster.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
ensure_cargo_pgrx
ensure_server
step "server: $(psql -XAtq -d postgres -c 'SELECT pg_catalog.version()')"

step "#[pg_test]s of the extension"
pgdata=$(mktemp -d "${TMPDIR:-/tmp}/pgmi-pgrx.XXXXXX")
as_root chown postgres: "$pgdata"
# pgrx runs initdb with this directory as its working directory, from our own user, so it
# must be searchable by us too (mktemp made it 0700); the cluster itself lives in a 0700
# subdirectory that initdb creates.
as_root chmod 0755 "$pgdata"
(cd "$ROOT/pgmi-ext" && cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata "$pgdata")
as_root rm -rf "$pgdata"

# `cargo pgrx test` installed its test build into the server; put the real one back.
install_extension

step "unit and live-server tests"
cargo build -q -p pgmi-upload
cargo test --no-fail-fast --workspace --exclude pgmi-ext
