#!/usr/bin/env bash
# Checks the packages scripts/package.sh made, the way a user meets them: on a machine with
# only the distribution's PostgreSQL, install the two .debs with apt, CREATE EXTENSION pgmi,
# and deploy a template with the installed client, twice. Nothing is compiled, and the
# check fails if cargo or rustc is used (they are taken off PATH).
#
#   scripts/package-check.sh DIR      # DIR holds postgresql-N-pgmi_*.deb and pgmi-upload_*.deb
#
# Meant for a throw-away machine (docs/release.md): it installs packages and starts the
# distribution's cluster. PG_MAJOR (default 15) picks the extension package.
set -euo pipefail
dir=$(cd "${1:?usage: $0 DIR}" && pwd)
major=${PG_MAJOR:-15}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
step() { printf '==> %s\n' "$*" >&2; }

# No Rust and no compiler take part from here on.
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/\.cargo/bin$' | paste -sd:)
export PATH
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "cargo or rustc is still on PATH ($PATH)" >&2
    exit 1
fi

step "installing postgresql-$major and the pgmi packages with apt"
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "postgresql-$major" "$dir"/postgresql-"$major"-pgmi_*.deb "$dir"/pgmi-upload_*.deb
for cc in cc gcc clang; do
    ! command -v "$cc" >/dev/null || echo "note: $cc is installed on this machine" >&2
done
as_root pg_ctlcluster "$major" main status >/dev/null || as_root pg_ctlcluster "$major" main start
me=$(id -un)
as_postgres psql -XAtq -c "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '$me'" | grep -q 1 \
    || as_postgres createuser --superuser "$me"
export PGHOST=/var/run/postgresql PGDATABASE=postgres

step "what the client package installed"
command -v pgmi-upload pgmi
pgmi-upload version
pgmi version >/dev/null
for f in /usr/share/man/man1/pgmi-upload.1.gz /usr/share/man/man1/pgmi-upload-deploy.1.gz \
         /usr/share/bash-completion/completions/pgmi-upload \
         /usr/share/bash-completion/completions/pgmi \
         /usr/share/zsh/site-functions/_pgmi-upload \
         /usr/share/fish/vendor_completions.d/pgmi.fish; do
    [ -s "$f" ] || { echo "missing: $f" >&2; exit 1; }
done

step "CREATE EXTENSION pgmi"
psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE pgmi_package_check"
version=$(psql -XAtq -v ON_ERROR_STOP=1 -d pgmi_package_check \
    -c "CREATE EXTENSION pgmi" -c "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgmi'")
echo "extension pgmi $version installed"

step "deploying the basic template with the installed client"
work=$(mktemp -d)
cd "$work"
pgmi-upload init app --template basic
pgmi-upload deploy app -d pgmi_package_check --session extension
pgmi deploy app -d pgmi_package_check --session extension
step "the packages work: extension $version, $(pgmi-upload --version)"
