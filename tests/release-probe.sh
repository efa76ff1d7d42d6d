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
# probe KIND RELEASE HEADERS_FN PACKAGE_VERSION_FN SUITE_FN PACKAGE C-PROBE-ARGS...
probe() {
  local kind=$1 rel=$2 headers=$3 version=$4 suite=$5 pkg=$6 dir; shift 6
  if ! dir=$("$headers" "$rel"); then
    echo "FAIL $kind $rel: its headers could not be fetched"
    fail=1
    return
  fi
  echo "== $kind $rel: $pkg $("$version" "$rel") from Debian $("$suite" "$rel")"
  "${CARGO_TARGET_DIR:-$PWD/target}/debug/xen-abi-gen" c-probe "$@" "$dir" || fail=1
}
for rel in $XEN_RELEASES; do
  probe Xen "$rel" xen_release_headers xen_release_package_version xen_release_suite libxen-dev \
    --release "$rel" --xen-include
done
for rel in $LINUX_RELEASES; do
  probe Linux "$rel" linux_release_headers linux_release_package_version linux_release_suite \
    linux-libc-dev --uapi --linux-release "$rel" --linux-include
done
exit $fail
