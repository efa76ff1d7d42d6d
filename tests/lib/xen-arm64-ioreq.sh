# Sourced: an arm64 Xen with IOREQ servers, built from Debian's own source package. Debian's
# arm64 hypervisor leaves CONFIG_IOREQ_SERVER out, and without it Xen on Arm has no dm_op at all.
# The source is bookworm's xen 4.17.5+72-g01140da4e8-1 from Debian's archive (through a private
# apt configuration with deb-src; the newer 4.17 and 4.20 sources are not downloadable there),
# unpacked with Debian's patches; the build differs from the defaults by the three lines of
# XEN_ARM64_IOREQ_CONFIG, which it prints. Cached: about 30 s to build once.
# Needs tests/lib/private-apt.sh and PKGS_ARM64_XEN_BUILD installed.

XEN_ARM64_SOURCE_VERSION=4.17.5+72-g01140da4e8-1
XEN_ARM64_IOREQ_CONFIG="CONFIG_DEBUG=n
CONFIG_EXPERT=y
CONFIG_IOREQ_SERVER=y"

# ensure_xen_arm64_ioreq: sets XEN_ARM64_IOREQ to the hypervisor image (built once, cached).
ensure_xen_arm64_ioreq() {
  local cache="${XEN_ABI_CACHE:-/var/cache/xen-abi}/xen-arm64-ioreq/$XEN_ARM64_SOURCE_VERSION"
  local work src apt_dir="${XEN_ABI_CACHE:-/var/cache/xen-abi}/apt-src-bookworm" line
  XEN_ARM64_IOREQ="$cache/xen"
  if [ -s "$XEN_ARM64_IOREQ" ]; then
    echo "== arm64 Xen with IOREQ servers: $XEN_ARM64_IOREQ (cached; Debian's xen $XEN_ARM64_SOURCE_VERSION with $(tr '\n' ' ' <<<"$XEN_ARM64_IOREQ_CONFIG"))"
    return 0
  fi
  # The suite's binary and source indexes, in an apt configuration of their own.
  apt_root "$apt_dir" amd64 bookworm true
  grep -q '^deb-src ' "$apt_dir/sources.list" || sed 's/^deb /deb-src /' "$apt_dir/sources.list" >>"$apt_dir/sources.list"
  apt_root "$apt_dir" amd64 bookworm apt-get update -qq >/dev/null 2>&1 || true
  work=$(mktemp -d)
  chown _apt "$work" 2>/dev/null || true
  (cd "$work" && apt_root "$apt_dir" amd64 bookworm apt-get source -qq --download-only "xen=$XEN_ARM64_SOURCE_VERSION" >/dev/null 2>&1) || {
    echo "FAIL: Debian's xen source $XEN_ARM64_SOURCE_VERSION could not be downloaded (bookworm, deb-src)"; exit 1; }
  # (It cannot check the .dsc's signature without Debian's developer keys; apt checked the
  # archive's signature of the index that names the files and their hashes.)
  dpkg-source -q -x "$work/xen_$XEN_ARM64_SOURCE_VERSION.dsc" "$work/xen" >"$work/unpack.log" 2>&1 ||
    { cat "$work/unpack.log"; echo "FAIL: dpkg-source could not unpack xen $XEN_ARM64_SOURCE_VERSION with Debian's patches"; exit 1; }
  src="$work/xen/xen"
  printf '%s\n' "$XEN_ARM64_IOREQ_CONFIG" >"$src/.config"
  make -s -C "$src" XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- olddefconfig >/dev/null ||
    { echo "FAIL: olddefconfig of the arm64 hypervisor"; exit 1; }
  # Kconfig writes an "=n" as "# CONFIG_X is not set".
  while IFS= read -r line; do
    case $line in *=n) want="# ${line%=n} is not set" ;; *) want=$line ;; esac
    grep -qx "$want" "$src/.config" || { echo "FAIL: the arm64 hypervisor's configuration lacks $line"; exit 1; }
  done <<<"$XEN_ARM64_IOREQ_CONFIG"
  echo "== building Debian's xen $XEN_ARM64_SOURCE_VERSION for arm64 with: $(tr '\n' ' ' <<<"$XEN_ARM64_IOREQ_CONFIG")"
  make -s -C "$src" XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j"$(nproc)" >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log"; echo "FAIL: building the arm64 hypervisor"; exit 1; }
  mkdir -p "$cache"
  cp "$src/xen" "$XEN_ARM64_IOREQ.tmp"
  cp "$src/.config" "$cache/config"
  mv "$XEN_ARM64_IOREQ.tmp" "$XEN_ARM64_IOREQ"
  rm -rf "$work"
}
