# Sourced by the real-Xen scenarios: the hypervisor and Debian's kernel, cached, and how a
# scenario fails.

# Report a failure with the tail of the QEMU log in $log (FAIL_TAIL lines, 40 by default), exit 1.
fail() {
  echo "FAIL: $*"
  echo "--- QEMU log tail ($log):"
  tail -"${FAIL_TAIL:-40}" "$log" | tr -d '\r'
  exit 1
}

# The verdict on a scenario whose kernel prints "CHECK <name>: ok|FAIL" lines and a RESULT line
# into $log: shows the CHECK lines, fails on a QEMU timeout, a failing check, no "RESULT: PASS"
# or fewer than MIN passing checks; sets n to the number of passing checks.
checks_verdict() { # qemu-exit-status min-checks
  tr -d '\r' <"$log" | grep -E '^CHECK ' || true
  [ "$1" = 124 ] && fail "QEMU timed out (hung boot)"
  grep -q '^CHECK .*: FAIL' "$log" && fail "failing checks: $(grep '^CHECK .*: FAIL' "$log" | cut -d: -f1 | tr '\n' ';')"
  grep -q 'RESULT: PASS' "$log" || fail "no RESULT: PASS line"
  n=$(grep -c '^CHECK .*: ok' "$log")
  [ "$n" -ge "$2" ] || fail "only $n checks ran"
}

# The extraversion a backend read ("EXTRAVERSION <backend> <value>" in $log) must be the one in
# Xen's banner; sets extra to it (not a command substitution: fail must end the scenario).
extraversion_of() { # backend [release, default 4.17]
  extra=$(grep -m1 "^EXTRAVERSION $1 " "$log" | tr -d '\r' | cut -d' ' -f3)
  # XENVER_extraversion returns at most 15 bytes: longer ones are a prefix of the banner's.
  local end=" ("
  [ ${#extra} -ge 15 ] && end=""
  grep -qF "Xen version ${2:-4.17}${extra}${end}" "$log" || fail "extraversion \"$extra\" read through $1 does not match the banner: $(grep -m1 -o 'Xen version [^ ]*' "$log")"
}

# A scenario built with a deliberately broken backend must fail: no timeout, a "RESULT: FAIL"
# line; prints the one-line summary.
broken_verdict() { # qemu-exit-status what
  [ "$1" = 124 ] && fail "broken backend: QEMU timed out"
  grep -q 'RESULT: FAIL' "$log" || fail "the broken backend was not detected"
  echo "ok   $2 with a broken backend fails as it must: $(grep -c '^CHECK .*: FAIL' "$log") failing checks, e.g. $(grep -m1 '^CHECK .*: FAIL' "$log" | tr -d '\r')"
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
