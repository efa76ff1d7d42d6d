#!/usr/bin/env bash
# The spec's `since` against each Xen release it covers: the C probe against the public headers
# of Xen 4.14 (Debian 11), 4.17 (Debian 12) and 4.20 (Debian 13), fetched from Debian's registry
# into the cache (libxen-dev, extracted, not installed). Per release, everything the spec dates
# at or before it must be there with the same layout and value, and everything dated later
# must be absent. The linux/* files likewise against the uapi headers of Linux 5.10, 6.1 and 6.12
# (linux-libc-dev of the same suites), by each ioctl's `linux` release.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh

cargo build --locked -q -p xen-abi-gen
fail=0
for rel in $XEN_RELEASES; do
  if ! dir=$(xen_release_headers "$rel"); then
    echo "FAIL Xen $rel: its headers could not be fetched"
    fail=1
    continue
  fi
  echo "== Xen $rel: libxen-dev $(xen_release_package_version "$rel") from Debian $(xen_release_suite "$rel")"
  target/debug/xen-abi-gen c-probe --release "$rel" --xen-include "$dir" || fail=1
done
for rel in $LINUX_RELEASES; do
  if ! dir=$(linux_release_headers "$rel"); then
    echo "FAIL Linux $rel: its uapi headers could not be fetched"
    fail=1
    continue
  fi
  echo "== Linux $rel: linux-libc-dev $(linux_release_package_version "$rel") from Debian $(linux_release_suite "$rel")"
  target/debug/xen-abi-gen c-probe --uapi --linux-release "$rel" --linux-include "$dir" || fail=1
done
exit $fail
