#!/usr/bin/env bash
# The main job: regenerate xen-sys/src/generated/ from abi-spec/ and print the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/toolchain.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_GENERATE
ensure_toolchain
exec cargo run --locked --release -q -p xen-abi-gen -- generate "$@"
