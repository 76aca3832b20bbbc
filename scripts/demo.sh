#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build and install the extension, start a
# local PostgreSQL, and deploy the demo project in examples/demo into database pgmi_demo.
# Run it again: the migrations already applied are skipped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
ensure_cargo_pgrx
ensure_server
install_extension
step "building pgmi-upload"
cargo build -q -p pgmi-upload
step "deploying examples/demo into database pgmi_demo"
"$ROOT/target/debug/pgmi-upload" deploy "$ROOT/examples/demo" -d "${DEMO_DB:-pgmi_demo}" \
    --param greeting="hello from the demo"
