#!/usr/bin/env bash
# The main job: regenerate xen-sys/src/generated/ from abi-spec/ and print the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/toolchain.sh
ensure_toolchain
exec cargo run --locked --release -q -p xen-abi-gen -- generate "$@"
