# Sourced by the real-Xen scenarios: the hypervisor and Debian's kernel, cached, and how a
# scenario fails.

# Report a failure with the tail of the QEMU log in $log (FAIL_TAIL lines, 40 by default), exit 1.
fail() {
  echo "FAIL: $*"
  echo "--- QEMU log tail ($log):"
  tail -"${FAIL_TAIL:-40}" "$log" | tr -d '\r'
  exit 1
}

# Sets XEN_X86 to the uncompressed x86 hypervisor (QEMU's multiboot loader needs it so).
ensure_xen_x86() { # out-dir
  XEN_X86="$1/xen-4.17-amd64"
  [ -s "$XEN_X86" ] || zcat /boot/xen-4.17-amd64.gz > "$XEN_X86"
}

# Sets KVER, VMLINUZ and KMODS from Debian's current kernel package (the one linux-image-amd64
# depends on), downloaded once into the cache.
ensure_debian_kernel() {
  local cache="${XEN_ABI_CACHE:-/var/cache/xen-abi}/linux" kpkg kroot
  mkdir -p "$cache"
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  if [ -z "$kpkg" ]; then
    apt-get update -qq || true
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  fi
  [ -n "$kpkg" ] || { echo "FAIL: cannot find Debian's linux-image-amd64 kernel package"; exit 1; }
  KVER=${kpkg#linux-image-}
  kroot="$cache/$kpkg"
  if [ ! -d "$kroot/boot" ]; then
    mkdir -p "$cache/debs" && chown _apt "$cache/debs" 2>/dev/null || true
    (cd "$cache/debs" && apt-get download -qq "$kpkg") || { echo "FAIL: cannot download $kpkg"; exit 1; }
    rm -rf "$kroot.tmp"
    dpkg-deb -x "$cache"/debs/"$kpkg"_*.deb "$kroot.tmp"
    mv "$kroot.tmp" "$kroot"
  fi
  VMLINUZ="$kroot/boot/vmlinuz-$KVER"
  KMODS="$kroot/lib/modules/$KVER/kernel"
}
