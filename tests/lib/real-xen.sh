# Sourced by the real-Xen scenarios: the hypervisor and Debian's kernel, cached, and how a
# scenario fails.

# Report a failure with the tail of the QEMU log in $log (FAIL_TAIL lines, 40 by default), exit 1.
# What went wrong first is named first: a domain or Xen that died (death_cause), a wait inside
# dom0 that ran out, QEMU stopped as hung ($hang); the symptom the caller saw comes after it.
fail() {
  local cause
  cause=$(first_cause)
  if [ -n "$cause" ] && [ "$cause" != "$*" ]; then
    echo "FAIL: $cause"
    echo "      (and then: $*)"
  else
    echo "FAIL: $*"
  fi
  echo "--- QEMU log tail ($log):"
  tail -"${FAIL_TAIL:-40}" "$log" | tr -d '\r'
  exit 1
}

# The first sign in $log that a domain or the hypervisor died, as one line, or nothing. Dom0's
# init prints unprefixed lines, its kernel "[ time ]" lines, Xen "(XEN)" lines and the
# freestanding domains "(dN)" lines; "dom0 init died" quotes the init's last line.
death_cause() {
  [ -f "${log:-}" ] || return 0
  tr -d '\r' <"$log" | sed 's/^(XEN) (d/(d/' | awk '
    function say(s) { print s; exit }
    /^\(XEN\) Panic on CPU/ { xp = NR + 1; next }
    NR == xp { sub(/^\(XEN\) /, ""); say("Xen panicked: " $0) }
    /Kernel panic - not syncing: Attempted to kill init/ {
      c = $0; sub(/.*exitcode=/, "", c)
      say("dom0 init died (exit code " c "): " (init_line == "" ? "it printed nothing" : init_line)) }
    /Kernel panic - not syncing: / { sub(/.*not syncing: /, ""); say("dom0 kernel panicked: " $0) }
    /^\[ *[0-9]+\.[0-9]+\] (BUG|Oops): / { sub(/^\[ *[0-9.]+\] /, ""); say("dom0 kernel: " $0) }
    /^PANIC: / { say("dom0 kernel panicked: " substr($0, 8)) }
    /^\(d[0-9]+\) [A-Z]+ PANIC/ { d = $1; $1 = ""; say("domain " substr(d, 2, length(d) - 2) " panicked:" $0) }
    /^\(XEN\) Hardware Dom0 crashed/ { say("dom0 crashed; its last line: " (dom0_line == "" ? "none" : dom0_line)) }
    /^\(XEN\) Domain [0-9]+ \(vcpu#[0-9]+\) crashed/ { sub(/^\(XEN\) /, ""); say($0) }
    /^\(XEN\) d[0-9]+v[0-9]+ Triple fault/ { sub(/^\(XEN\) /, ""); say($0) }
    /^\(XEN\) domain_crash called from/ { sub(/^\(XEN\) /, ""); say($0) }
    !/^\(XEN\)|^\(d[0-9]+\)/ && NF { dom0_line = $0 }
    !/^\(XEN\)|^\(d[0-9]+\)|^\[ *[0-9]+\.[0-9]+\]/ && NF { init_line = $0 }'
}

# The first cause of a failure in $log, as one line, or nothing: a death (death_cause), else a
# bounded wait inside dom0 that ran out ("== ... TIMEOUT ...") or a step there that failed
# ("== FAILED: ..."), else QEMU stopped as hung.
first_cause() {
  local c
  c=$(death_cause)
  [ -n "$c" ] || { [ -f "${log:-}" ] && c=$(tr -d '\r' <"$log" | grep -m1 -E '^== .*(TIMEOUT|FAILED)' | sed 's/^== //'); } || true
  [ -n "$c" ] || c=${hang:-}
  [ -z "$c" ] || echo "$c"
}

# A scenario's first verdict on a boot: no domain died, no bounded wait ran out, QEMU was not
# stopped as hung. Whatever the checks then say, a stage with one of these fails.
boot_verdict() {
  local c
  c=$(first_cause)
  [ -z "$c" ] || fail "$c"
}

# qemu_bounded LOG COMMAND...: runs QEMU with its output in LOG; returns its exit status, 124 if
# it was stopped as hung (the reason in $hang). The bound is on progress, not on speed, so a
# loaded host cannot trip it: QEMU is stopped when LOG has not grown for QEMU_IDLE_S seconds
# (default 300; the longest silence of a passing boot here is well under a minute) or after
# QEMU_LIMIT_S seconds in all (default 3600: a boot that prints forever).
qemu_bounded() {
  local qlog=$1 q w rc=0
  shift
  hang=
  rm -f "$qlog.hang"
  "$@" </dev/null >"$qlog" 2>&1 &
  q=$!
  (
    last=-1 since=0 t=0
    while sleep 5; do
      t=$((t + 5))
      size=$(stat -c %s "$qlog" 2>/dev/null || echo 0)
      [ "$size" = "$last" ] || { last=$size; since=$t; }
      if [ $((t - since)) -ge "${QEMU_IDLE_S:-300}" ]; then
        echo "no output for ${QEMU_IDLE_S:-300} s" >"$qlog.hang"; kill "$q"; exit 0
      fi
      if [ "$t" -ge "${QEMU_LIMIT_S:-3600}" ]; then
        echo "still running after ${QEMU_LIMIT_S:-3600} s" >"$qlog.hang"; kill "$q"; exit 0
      fi
    done
  ) </dev/null >/dev/null 2>&1 &
  w=$!
  wait "$q" || rc=$?
  kill "$w" 2>/dev/null || true
  wait "$w" 2>/dev/null || true
  if [ -s "$qlog.hang" ]; then
    hang="QEMU stopped as hung: $(cat "$qlog.hang"); its last line: $(tr -d '\r' <"$qlog" | grep . | tail -1)"
    rc=124
  fi
  rm -f "$qlog.hang"
  return "$rc"
}

# The verdict on a scenario whose kernel prints "CHECK <name>: ok|FAIL" lines and a RESULT line
# into $log: shows the CHECK lines, fails on a QEMU timeout, a failing check, no "RESULT: PASS"
# or fewer than MIN passing checks; sets n to the number of passing checks.
checks_verdict() { # qemu-exit-status min-checks
  tr -d '\r' <"$log" | grep -E '^CHECK ' || true
  boot_verdict
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
  [ "$1" = 124 ] && fail "broken backend: $hang"
  grep -q 'RESULT: FAIL' "$log" || fail "the broken backend was not detected"
  echo "ok   $2 with a broken backend fails as it must: $(grep -c '^CHECK .*: FAIL' "$log") failing checks, e.g. $(grep -m1 '^CHECK .*: FAIL' "$log" | tr -d '\r')"
}

# Sets XEN_X86 to the uncompressed x86 hypervisor (QEMU's multiboot loader needs it so).
ensure_xen_x86() { # out-dir
  XEN_X86="$1/xen-4.17-amd64"
  [ -s "$XEN_X86" ] || zcat /boot/xen-4.17-amd64.gz > "$XEN_X86"
}

# Sets XEN_ARM64_DEBIAN to Debian's own arm64 hypervisor (xen-hypervisor-4.17-arm64:arm64, built
# without IOREQ servers), fetched once into OUT-DIR through the private apt configuration
# (tests/lib/private-apt.sh).
ensure_xen_arm64_debian() { # out-dir
  local v
  XEN_ARM64_DEBIAN="$1/xen-4.17-arm64"
  [ -s "$XEN_ARM64_DEBIAN" ] && return 0
  v=$(private_apt_candidate xen-hypervisor-4.17-arm64:arm64)
  [ -n "$v" ] || { private_apt_update; v=$(private_apt_candidate xen-hypervisor-4.17-arm64:arm64); }
  [ -n "$v" ] || { echo "FAIL: no xen-hypervisor-4.17-arm64:arm64 in Debian's lists"; exit 1; }
  private_apt_download "$1/debs" "xen-hypervisor-4.17-arm64:arm64=$v"
  rm -rf "$1/xen-arm64-root"
  dpkg-deb -x "$1"/debs/xen-hypervisor-4.17-arm64_*_arm64.deb "$1/xen-arm64-root"
  cp "$1/xen-arm64-root/boot/xen-4.17-arm64" "$XEN_ARM64_DEBIAN"
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
