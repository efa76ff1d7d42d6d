#!/usr/bin/env bash
# Real IOREQ from a stub domain: a Linux PV dom0 (xenstored, xl) creates the freestanding PVH test
# guest and the project's x86_64 PVH stub domain (tests/xen-pvh-stubdom) paused, makes the stub
# domain the guest's device model (set-target.c: XEN_DOMCTL_set_target, the one toolstack step
# stable interfaces lack), and unpauses both. The stub domain serves xen's regbank device with
# IoreqServer on xen::bare, by stable hypercalls only; the guest checks every answer (MMIO, port
# I/O, rep string I/O through guest RAM, released and unclaimed ranges), times a loop, writes the
# stop register, and checks that the device then reads all-ones. In the same boot the dom0 Rust
# server serves the same timed loop, so the two figures compare (instructions, QEMU -icount).
#
# Per Xen release (STUBDOM_RELEASES, "4.17 4.20" by default), each with its own dom0 (tests/lib/
# dom0-initramfs.sh). x86 Xen maps foreign pages into PVH domains only from 4.19: before that
# the stub domain must refuse with the typed version error naming XENMEM_acquire_resource and
# 4.19, power off, and leave the guest unserved (all-ones reads), not blocked.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
ensure_debian_rust >/dev/null

. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
ensure_debian_kernel

# The guest, the dom0 server and the plugin (tests/lib/dom0-initramfs.sh), and the stub domain.
build_ioreq_programs "$out"
(cd tests/xen-pvh-stubdom && RUSTFLAGS="-C relocation-model=static" cargo build --locked -q \
  --release --target x86_64-unknown-linux-gnu --target-dir "$out/pvh-stubdom")
stubdom="$out/pvh-stubdom/x86_64-unknown-linux-gnu/release/xen-pvh-stubdom"
echo "     stub domain $(sha256sum "$stubdom" | cut -c1-16), regbank $(sha256sum "$server" | cut -c1-16), guest $(sha256sum "$guest" | cut -c1-16) (sha256): the same files on every release"

make_initramfs() { # release mode cpio
  dom0_initramfs "$1" "$out/stubdom-initramfs-$1"
  release_c "$ir/set-target" tests/real-xen/set-target.c -lxenctrl -lxenevtchn -lxengnttab \
    -lxenforeignmemory -lxendevicemodel -lxencall -lxentoollog -lxentoolcore
  cp "$guest" "$ir/guest.elf"
  cp "$stubdom" "$ir/stubdom.elf"
  cp "$server" "$ir/regbank"
  echo "$2" >"$ir/etc/scenario"
  local gmode=stubdom
  [ "$2" = serve ] || gmode=unserved
  cat >"$ir/etc/xen/guest.cfg" <<CFG
name = "guest"
type = "pvh"
kernel = "/guest.elf"
cmdline = "$gmode"
memory = 16
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  # 32 MiB: the frame window at 256 MiB (tests/xen-pvh-stubdom/src/main.rs) is above its RAM.
  cat >"$ir/etc/xen/stubdom.cfg.in" <<'CFG'
name = "stubdom"
type = "pvh"
kernel = "/stubdom.elf"
cmdline = "target=TARGET"
memory = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
gone() { # domain-name bound-in-seconds: wait until it is destroyed (it powers off)
  n=0; while xl domid "$1" >/dev/null 2>&1; do
    sleep 1; n=$((n+1)); [ $n -gt "$2" ] && { xl destroy "$1"; echo "== $1 TIMEOUT"; return 1; }
  done
  echo "== $1 gone after ${n} s"
}
xl create -p /etc/xen/guest.cfg
gd=$(xl domid guest)
sed "s/TARGET/$gd/" /etc/xen/stubdom.cfg.in >/tmp/stubdom.cfg
xl create -p /tmp/stubdom.cfg
sd=$(xl domid stubdom)
echo "== guest $gd, stub domain $sd"
/set-target "$sd" "$gd"
echo "== set-target exit $?"
xl unpause stubdom
n=0; until xl dmesg | grep -q 'STUBDOM regbank: serving\|STUBDOM FAIL\|STUBDOM PANIC'; do
  sleep 0.2; n=$((n+1)); [ $n -gt 150 ] && break
done
if [ "$(cat /etc/scenario)" = serve ]; then
  # The idle cost: the stub domain's CPU time over 2 s with nothing to serve (it waits in
  # SCHEDOP_poll).
  t0=$(xl list stubdom | awk 'NR == 2 { print $6 }'); sleep 2
  t1=$(xl list stubdom | awk 'NR == 2 { print $6 }')
  echo "== stub domain idle: CPU time $t0 s -> $t1 s over 2 s"
  # Wait for the stub domain's end without polling, which would run in dom0 during the timed
  # loop: a watch on @releaseDomain (it fires once when set, then when a domain goes).
  timeout 120 xenstore-watch -n 2 @releaseDomain >/dev/null &
  w=$!
  xl unpause guest
  wait $w
  gone stubdom 10
  serve_until RUST1 regbank "regbank: phase 1" /tmp/r1.log - /regbank "$gd"
else
  gone stubdom 30
  xl unpause guest
fi
gone guest 60
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$3"
}

# Checks common to both modes: no timeout, set-target done, the guest's checks all passing, every
# domain gone on its own.
common_verdict() {
  grep -E '^\(d[0-9]+\) (STUBDOM|GUEST)|^== ' <<<"$L" || true
  [ "$rc" = 124 ] && fail "QEMU timed out"
  grep -q '^== set-target exit 0' <<<"$L" || fail "set-target failed: $(grep 'set-target' <<<"$L")"
  grep -q 'STUBDOM PANIC' <<<"$L" && fail "the stub domain panicked"
  grep -q 'GUEST CHECK .*: FAIL' <<<"$L" && fail "failing guest checks"
  grep -q 'GUEST RESULT: PASS' <<<"$L" || fail "no GUEST RESULT: PASS line"
  grep -q '== [a-z]* TIMEOUT' <<<"$L" && fail "a domain did not finish: $(grep '== [a-z]* TIMEOUT' <<<"$L")"
  grep -q '^== guest gone' <<<"$L" || fail "the guest's end was not seen"
  n=$(grep -c 'GUEST CHECK .*: ok' <<<"$L")
  heap=$(grep -m1 -o 'STUBDOM heap: .*' <<<"$L" || true)
  [ -n "$heap" ] || fail "the stub domain reported no heap use"
}

refusal_verdict() {
  local want="STUBDOM FAIL: XENMEM_acquire_resource into a PVH/HVM domain needs Xen 4.19 or later; the running hypervisor is $rel"
  common_verdict
  grep -q "$want" <<<"$L" || fail "the stub domain did not refuse with \"${want#STUBDOM FAIL: }\""
  echo "ok   stub domain on Xen $rel: \"$(grep -m1 -o 'XENMEM_acquire_resource into.*' <<<"$L")\"; it powered off, the guest ran unserved: $n checks passed (all-ones reads, dropped writes); $ms ms of QEMU"
  summary+=("$rel|refusal: XENMEM_acquire_resource needs 4.19|guest unserved, $n checks passed, not blocked|-")
}

serve_verdict() {
  common_verdict
  grep -q 'STUBDOM FAIL' <<<"$L" && fail "the stub domain failed: $(grep -m1 'STUBDOM FAIL' <<<"$L")"
  grep -q 'STUBDOM stopped cleanly' <<<"$L" || fail "the stub domain did not stop cleanly"
  grep -q 'STUBDOM regbank: stop requested by the guest' <<<"$L" || fail "the guest's stop request did not reach the stub domain"
  grep -q '== RUST1 EXIT 0' <<<"$L" || fail "the dom0 server did not exit cleanly"
  grep -q ', 0 while serving' <<<"$L" || fail "the stub domain allocated while serving: $heap"
  local idle t0 t1 st ru sw rw
  idle=$(grep -m1 '^== stub domain idle' <<<"$L" || true)
  t0=$(sed -n 's/^== stub domain idle: CPU time \([0-9.]*\) s -> .*/\1/p' <<<"$idle")
  t1=$(sed -n 's/^== stub domain idle: CPU time [0-9.]* s -> \([0-9.]*\) s.*/\1/p' <<<"$idle")
  [ -n "$t0" ] && [ -n "$t1" ] || fail "no idle measurement: $idle"
  awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a <= 0.1) }' || fail "the idle stub domain burnt its vCPU: $idle"
  st=$(grep -o 'GUEST TIMING stubdom reads=[0-9]* tsc=[0-9]*' <<<"$L" | sed 's/.*tsc=//')
  ru=$(grep -o 'GUEST TIMING rust reads=[0-9]* tsc=[0-9]*' <<<"$L" | sed 's/.*tsc=//')
  nr=$(grep -o 'GUEST TIMING stubdom reads=[0-9]*' <<<"$L" | sed 's/.*reads=//')
  [ -n "$st" ] && [ -n "$ru" ] && [ -n "$nr" ] || fail "missing timing lines"
  # The plugin's windows, in the order of the TIMING lines: stub domain first, dom0 second.
  sw=$(grep -o 'INSN window [0-9]*: .*' <<<"$L" | sed -n 1p || true)
  rw=$(grep -o 'INSN window [0-9]*: .*' <<<"$L" | sed -n 2p || true)
  [ -n "$sw" ] && [ -n "$rw" ] || fail "the plugin did not see both timed loops"
  split() { awk -v n="$nr" '{ for (i = 4; i <= NF; i++) { split($i, kv, "="); printf "%s%s %.0f", (i > 4 ? " + " : ""), kv[1], kv[2] / n } }' <<<"$1"; }
  echo "ok   stub domain on Xen $rel (Linux $kver dom0): $n guest checks passed; torn down on the guest's stop request (the device then reads all-ones); $ms ms of QEMU"
  echo "     set-up:       $(grep -m1 -o 'STUBDOM backend: .*' <<<"$L"); $(grep -m1 -o 'STUBDOM regbank: serving .*' <<<"$L")"
  echo "     idle:         CPU time $t0 s -> $t1 s over 2 s (waits in SCHEDOP_poll)"
  echo "     heap:         ${heap#STUBDOM heap: }"
  echo "     per read:     (instructions of the whole machine, $nr reads each) stub domain $(awk -v s="$st" -v n="$nr" 'BEGIN { printf "%.0f", s / n }'), dom0 Rust server $(awk -v s="$ru" -v n="$nr" 'BEGIN { printf "%.0f", s / n }'): dom0/stub = $(awk -v s="$st" -v r="$ru" 'BEGIN { printf "%.4f", r / s }')x"
  echo "     split:        stub domain: $(split "$sw") (guest = the guest and the stub domain, both below 4 GiB; kernel and user: dom0 meanwhile); dom0 server: $(split "$rw")"
  summary+=("$rel|serve: $n guest checks|stop request, clean teardown|$(awk -v s="$st" -v r="$ru" 'BEGIN { printf "%.2fx", r / s }')")
}

summary=()
FAIL_TAIL=60
for rel in ${STUBDOM_RELEASES:-4.17 4.20}; do
  release_dom0 "$rel"
  mode=refusal
  release_at_least "$rel" 4.19 && mode=serve
  make_initramfs "$rel" "$mode" "$out/stubdom-initramfs-$rel.cpio"
  log="$out/ioreq-stubdom-$rel.log"
  boot_dom0 "$out/stubdom-initramfs-$rel.cpio" "$mode"
  L=$(sed 's/^(XEN) //' <<<"$L")
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  "${mode}_verdict"
done
echo "     release | scenario | result | stub domain vs dom0 server (speed-up per read)"
printf '     %s\n' "${summary[@]}" | sed 's/|/ | /g'
