# Shared set-up steps for scripts/demo.sh and scripts/test.sh. Every step checks first and
# only acts when something is missing, so a second run costs seconds.
#
# Works as root and as an ordinary user with sudo. The PostgreSQL server always runs as
# the `postgres` OS user (it refuses root); this user connects over the Unix socket as a
# database role of the same name, created as a superuser for local development.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
# cargo-pgrx must be exactly the pgrx version the extension is built with.
PGRX_VERSION=$(sed -n 's/^pgrx = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
# Keeps `cargo pgrx test`'s internal install build on the test build's rustflags, saving
# a full second compile (different rustflags make cargo rebuild every crate).
export CARGO_PGRX_DISABLE_GC_SECTIONS_WORKAROUND=1
export PGHOST=${PGHOST:-/var/run/postgresql}
ME=$(id -un)

step() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

ensure_packages() {
    # postgresql-server-dev-N brings the headers and the clang that pgrx's bindgen needs;
    # build-essential/pkg-config/libssl-dev build cargo-pgrx; sudo is used by
    # `cargo pgrx test --runas postgres`; pgbouncer is started by tests/tests/locks.rs
    # (its own instance on a free loopback port) to test the pooler check; faketime runs
    # pgmi-upload at the frozen clock of the recorded AWS reference tokens
    # (tests/tests/cloud_aws.rs).
    local wanted=(postgresql-"$PG_MAJOR" postgresql-server-dev-"$PG_MAJOR" build-essential
                  pkg-config libssl-dev sudo ca-certificates pgbouncer faketime)
    local missing=() p
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "installing ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

ensure_cargo_pgrx() {
    if ! cargo pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
        step "compiling cargo-pgrx $PGRX_VERSION (once; about 5 minutes on 2 cores)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi
    if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        step "registering PostgreSQL $PG_MAJOR with cargo-pgrx"
        cargo pgrx init --pg"$PG_MAJOR" "$PG_CONFIG" >/dev/null
    fi
}

# Starts the distribution's cluster (creating it if the package did not) and makes sure
# this OS user has a database role. Exports PGPORT for everything that follows.
ensure_server() {
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main"' | grep -q .; then
        step "creating PostgreSQL $PG_MAJOR cluster main"
        as_root pg_createcluster "$PG_MAJOR" main >/dev/null
    fi
    if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
        step "starting PostgreSQL $PG_MAJOR (cluster main)"
        as_root pg_ctlcluster "$PG_MAJOR" main start
    fi
    PGPORT=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" {print $3}')
    export PGPORT
    if ! as_postgres psql -XAtq -p "$PGPORT" -d postgres \
            -c "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '$ME'" | grep -q 1; then
        step "creating database role $ME (superuser, local development)"
        as_postgres createuser -p "$PGPORT" --superuser "$ME"
    fi
}

# Builds the extension (debug profile: seconds when nothing changed) and installs it into
# the server's directories.
install_extension() {
    step "building and installing the pgmi extension"
    local sudo_flag=()
    [ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
    (cd "$ROOT/pgmi-ext" && cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" "$@")
}
