#!/usr/bin/env bash
# ABI compatibility: the working tree's spec against a base (XEN_ABI_DIFF_BASE, else the last
# release tag v*, else the merge base with origin/main, else HEAD). Additions are listed; any
# change to an existing item fails.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${XEN_ABI_DIFF_BASE:-}"
if [ -z "$base" ]; then
  base=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)
fi
if [ -z "$base" ] && git rev-parse -q --verify origin/main >/dev/null; then
  base=$(git merge-base HEAD origin/main)
fi
[ -n "$base" ] || base=HEAD
if ! git cat-file -e "$base:abi-spec" 2>/dev/null; then
  echo "base $base has no abi-spec/: nothing to compare against yet"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$base" abi-spec | tar -x -C "$tmp"
echo "comparing abi-spec/ with $(git rev-parse --short "$base") ($base)"
cargo run --locked -q -p xen-abi-gen -- diff "$tmp/abi-spec" abi-spec
