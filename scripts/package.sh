#!/usr/bin/env bash
# Builds the release packages into target/packages/:
#
#   postgresql-N-pgmi_V-1_ARCH.deb     the extension for PostgreSQL N, Debian/Ubuntu layout
#   pgmi-V-pgN-linux-MACHINE.tar.gz    the same files with an install.sh, for other systems
#   pgmi-upload_V-1_ARCH.deb           the client: pgmi-upload and pgmi, man pages, completions
#   pgmi-upload-V-linux-MACHINE.tar.gz the same files for other systems
#
#   scripts/package.sh              # the extension for PostgreSQL 15, and the client
#   scripts/package.sh 13 15 18     # the extension for each major given, and the client
#
# V is the workspace version in Cargo.toml, the one place a version is written. Each major's
# pg_config comes from the distribution or a PyPI tree, as for the tests (scripts/lib.sh).
# A package's dependencies are read from the built files (the libraries they link and the
# newest glibc symbol version they use), not typed by hand.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=(15)

VERSION=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml")
[ -n "$VERSION" ] || { echo "no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
DEB_VERSION="$VERSION-1"
ARCH=$(dpkg --print-architecture)
MACHINE=$(uname -m)
OUT="$ROOT/target/packages"
MAINTAINER="pgmi developers <pgmi@example.invalid>"
mkdir -p "$OUT"

step() { printf '==> %s\n' "$*" >&2; }

# The Debian packages providing the libraries FILEs link, and libc6 at the newest GLIBC_x.y
# symbol version they use: "libc6 (>= 2.34), libgcc-s1, libssl3".
deb_depends() {
    local glibc soname path pkg deps=()
    glibc=$(objdump -T "$@" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    for soname in $(objdump -p "$@" | awk '$1 == "NEEDED" {print $2}' | sort -u); do
        path=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|x86_64|aarch64|AArch64/ {print $NF; exit}')
        [ -n "$path" ] || { echo "cannot find $soname, which the package links" >&2; return 1; }
        # dpkg knows a library by the path its package installed (/lib or /usr/lib).
        pkg=
        for candidate in "$path" "$(readlink -f "$path")"; do
            pkg=$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || { echo "no package owns $path ($soname)" >&2; return 1; }
        [ "$pkg" = libc6 ] && pkg="libc6 (>= $glibc)"
        deps+=("$pkg")
    done
    printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

# build_deb ROOTDIR NAME DEPENDS DESCRIPTION: DEBIAN/control, then dpkg-deb.
build_deb() {
    local dir=$1 name=$2 depends=$3 description=$4
    mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$name"
    cat >"$dir/usr/share/doc/$name/copyright" <<EOF
pgmi $VERSION, by the pgmi developers.
License: Apache-2.0 (on Debian: /usr/share/common-licenses/Apache-2.0).
EOF
    cat >"$dir/DEBIAN/control" <<EOF
Package: $name
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)
Depends: $depends
Section: database
Priority: optional
Description: $description
EOF
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$OUT/${name}_${DEB_VERSION}_${ARCH}.deb" >/dev/null
    echo "$OUT/${name}_${DEB_VERSION}_${ARCH}.deb"
}

# The extension for one major, in a subshell with that major's environment.
package_extension() (
    export PG_MAJOR=$1
    source "$ROOT/scripts/lib.sh"
    ensure_packages
    ensure_cargo_pgrx
    step "building the extension for PostgreSQL $PG_MAJOR (release)"
    local stage
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    (cd "$ROOT/pgmi-ext" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$stage/pgrx" >&2)
    local so="$stage/pgrx$("$PG_CONFIG" --pkglibdir)/pgmi.so"
    local ext="$stage/pgrx$("$PG_CONFIG" --sharedir)/extension"
    # The full scripts of earlier releases and the upgrade scripts, so that
    # `CREATE EXTENSION pgmi VERSION 'A'` and `ALTER EXTENSION pgmi UPDATE` work.
    cp "$ROOT"/pgmi-ext/sql/pgmi--*.sql "$ext/"

    # Debian's layout (and the PostgreSQL apt repository's) for major N.
    local deb="$stage/deb/postgresql-$PG_MAJOR-pgmi"
    install -D -m 0644 "$so" "$deb/usr/lib/postgresql/$PG_MAJOR/lib/pgmi.so"
    install -d "$deb/usr/share/postgresql/$PG_MAJOR/extension"
    install -m 0644 "$ext"/pgmi.control "$ext"/pgmi--*.sql "$deb/usr/share/postgresql/$PG_MAJOR/extension/"
    build_deb "$deb" "postgresql-$PG_MAJOR-pgmi" "postgresql-$PG_MAJOR, $(deb_depends "$so")" \
        "pgmi extension for PostgreSQL $PG_MAJOR
 Loads a pgmi project into session tables and runs its deploy.sql and tests
 (CREATE EXTENSION pgmi). The client is the pgmi-upload package."

    # The same files for any Linux: install.sh puts them where pg_config says.
    local name="pgmi-$VERSION-pg$PG_MAJOR-linux-$MACHINE"
    local tar="$stage/tar/$name"
    install -D -m 0644 "$so" "$tar/lib/pgmi.so"
    install -d "$tar/extension"
    install -m 0644 "$ext"/pgmi.control "$ext"/pgmi--*.sql "$tar/extension/"
    cat >"$tar/install.sh" <<EOF
#!/bin/sh
# Installs pgmi $VERSION into PostgreSQL $PG_MAJOR: PG_CONFIG=/path/to/pg_config ./install.sh
set -eu
cd "\$(dirname "\$0")"
PG_CONFIG=\${PG_CONFIG:-pg_config}
major=\$("\$PG_CONFIG" --version | sed -n 's/^PostgreSQL \\([0-9]*\\).*/\\1/p')
if [ "\$major" != "$PG_MAJOR" ]; then
    echo "this package is for PostgreSQL $PG_MAJOR, and \$PG_CONFIG is PostgreSQL \$major" >&2
    exit 1
fi
install -m 0755 lib/pgmi.so "\$("\$PG_CONFIG" --pkglibdir)/pgmi.so"
install -m 0644 extension/* "\$("\$PG_CONFIG" --sharedir)/extension/"
echo "installed; now, in a database: CREATE EXTENSION pgmi;"
EOF
    chmod 0755 "$tar/install.sh"
    tar -C "$stage/tar" --owner=0 --group=0 -czf "$OUT/$name.tar.gz" "$name"
    echo "$OUT/$name.tar.gz"
)

package_client() (
    step "building pgmi-upload (release)"
    cargo build -q --release -p pgmi-upload --manifest-path "$ROOT/Cargo.toml"
    local stage bin="$ROOT/target/release"
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    local name="pgmi-upload-$VERSION-linux-$MACHINE"
    local tree="$stage/$name"
    install -d "$tree/bin" "$tree/share/man/man1" "$tree/share/bash-completion/completions" \
        "$tree/share/zsh/site-functions" "$tree/share/fish/vendor_completions.d" \
        "$tree/share/doc/pgmi-upload"
    install -s -m 0755 "$bin/pgmi-upload" "$bin/pgmi" "$tree/bin/"
    local cmd
    for cmd in pgmi-upload pgmi; do
        "$tree/bin/$cmd" completion bash >"$tree/share/bash-completion/completions/$cmd"
        "$tree/bin/$cmd" completion zsh >"$tree/share/zsh/site-functions/_$cmd"
        "$tree/bin/$cmd" completion fish >"$tree/share/fish/vendor_completions.d/$cmd.fish"
    done
    "$tree/bin/pgmi-upload" man --dir "$tree/share/man/man1"
    "$tree/bin/pgmi" man >"$tree/share/man/man1/pgmi.1"
    install -m 0644 "$ROOT/README.md" "$ROOT/CHANGELOG.md" "$tree/share/doc/pgmi-upload/"
    tar -C "$stage" --owner=0 --group=0 -czf "$OUT/$name.tar.gz" "$name"
    echo "$OUT/$name.tar.gz"

    local deb="$stage/deb"
    install -d "$deb/usr"
    cp -r "$tree/bin" "$tree/share" "$deb/usr/"
    gzip -9n "$deb"/usr/share/man/man1/*.1
    build_deb "$deb" pgmi-upload "$(deb_depends "$tree/bin/pgmi-upload" "$tree/bin/pgmi")" \
        "deploy PostgreSQL projects with pgmi
 pgmi-upload (also installed as pgmi) packs a project, uploads it into a session
 and runs the project's deploy.sql, streaming the server's notices. It works with
 the pgmi extension (package postgresql-N-pgmi) and without it."
)

for major in "${majors[@]}"; do
    package_extension "$major"
done
package_client
step "packages in target/packages (version $VERSION)"
