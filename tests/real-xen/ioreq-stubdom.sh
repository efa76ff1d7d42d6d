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
# Twice: as is (timed), and with the fetch audit (the single-fetch and forward-only checks).
build_stubdom() { # extra-rustflags target-dir copy-to
  (cd tests/xen-pvh-stubdom && RUSTFLAGS="-C relocation-model=static $1" cargo build --locked -q \
    --release --target x86_64-unknown-linux-gnu --target-dir "$2")
  cp "$2/x86_64-unknown-linux-gnu/release/xen-pvh-stubdom" "$3"
}
stubdom="$out/stubdom.elf"
stubdom_audit="$out/stubdom-audit.elf"
build_stubdom "" "$out/pvh-stubdom" "$stubdom"
# The audit is a compiler flag (xen's fetch audit is no Cargo feature): its own target dir.
build_stubdom "--cfg xen_fetch_audit" "$out/pvh-stubdom-audit" "$stubdom_audit"
echo "     stub domain $(sha256sum "$stubdom" | cut -c1-16), audited $(sha256sum "$stubdom_audit" | cut -c1-16), regbank $(sha256sum "$server" | cut -c1-16), guest $(sha256sum "$guest" | cut -c1-16) (sha256): the same files on every release"

make_initramfs() { # release mode cpio
  dom0_initramfs "$1" "$out/stubdom-initramfs-$1"
  release_c "$ir/set-target" tests/real-xen/set-target.c -lxenctrl -lxenevtchn -lxengnttab \
    -lxenforeignmemory -lxendevicemodel -lxencall -lxentoollog -lxentoolcore
  cp "$guest" "$ir/guest.elf"
  cp "$stubdom" "$ir/stubdom.elf"
  cp "$stubdom_audit" "$ir/stubdom-audit.elf"
  cp "$server" "$ir/regbank"
  echo "$2" >"$ir/etc/scenario"
  local gmode="stubdom timed then-dom0"
  [ "$2" = serve ] || gmode=unserved
  pvh_guest_cfg guest "$gmode" >"$ir/etc/xen/guest.cfg"
  stubdom_cfg stubdom stubdom.elf "" >"$ir/etc/xen/stubdom.cfg.in"
  # The second pair: the audited stub domain, on the hypercall page, serves the device checks.
  pvh_guest_cfg guest2 stubdom >"$ir/etc/xen/guest2.cfg"
  stubdom_cfg stubdom2 stubdom-audit.elf " hypercall=page" >"$ir/etc/xen/stubdom2.cfg.in"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
# pair GUEST STUBDOM: create both paused, make the stub domain the guest's device model, start
# the stub domain and wait (bounded) until it serves or fails; sets gd and sd.
pair() {
  xl create -p "/etc/xen/$1.cfg"
  gd=$(xl domid "$1")
  sed "s/TARGET/$gd/" "/etc/xen/$2.cfg.in" >"/tmp/$2.cfg"
  xl create -p "/tmp/$2.cfg"
  sd=$(xl domid "$2")
  echo "== $1 $gd, $2 $sd"
  /set-target "$sd" "$gd"
  echo "== $2 set-target exit $?"
  xl unpause "$2"
  console_wait "(d$sd) STUBDOM \(regbank: serving\|FAIL\|PANIC\)" 60
}
pair guest stubdom
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
  gone guest 60
  pair guest2 stubdom2
  xl unpause guest2
  gone stubdom2 60
  gone guest2 60
else
  gone stubdom 30
  xl unpause guest
  gone guest 60
fi
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$3"
}

# 32 MiB: the frame window at 256 MiB (tests/xen-pvh-stubdom/src/main.rs) is above its RAM.
stubdom_cfg() { # name kernel extra-cmdline
  cat <<CFG
name = "$1"
type = "pvh"
kernel = "/$2"
cmdline = "target=TARGET$3"
memory = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

# pair_verdict GUEST STUBDOM: the checks on one pair (created by the init's pair()): set-target
# done, no panic, the guest's checks all passing, the guest gone on its own, a heap report. Sets
# G and S (the guest's and the stub domain's console lines, "(dN) " cut), n (passed checks) and
# heap.
pair_verdict() {
  local g s
  read -r g s < <(sed -n "s/^== $1 \([0-9]*\), $2 \([0-9]*\)$/\1 \2/p" <<<"$L") || true
  [ -n "${g:-}" ] && [ -n "${s:-}" ] || fail "$1 and $2 were not both created"
  G=$(sed -n "s/^(d$g) //p" <<<"$L")
  S=$(sed -n "s/^(d$s) //p" <<<"$L")
  grep -q "^== $2 set-target exit 0" <<<"$L" || fail "set-target failed: $(grep 'set-target' <<<"$L")"
  grep -q 'STUBDOM PANIC' <<<"$S" && fail "$2 panicked: $(grep -m1 'STUBDOM PANIC' <<<"$S")"
  grep -q 'GUEST CHECK .*: FAIL' <<<"$G" && fail "failing checks in $1: $(grep 'GUEST CHECK .*: FAIL' <<<"$G")"
  grep -q 'GUEST RESULT: PASS' <<<"$G" || fail "$1 printed no GUEST RESULT: PASS line"
  grep -q "^== $1 gone" <<<"$L" || fail "the end of $1 was not seen"
  n=$(grep -c 'GUEST CHECK .*: ok' <<<"$G")
  heap=$(grep -m1 -o 'STUBDOM heap: .*' <<<"$S" || true)
  [ -n "$heap" ] || fail "$2 reported no heap use"
}

# Checks common to both modes: the console lines, no timeout, every domain gone on its own, the
# first pair's checks.
common_verdict() {
  grep -E '^\(d[0-9]+\) (STUBDOM|GUEST)|^== ' <<<"$L" || true
  boot_verdict
  grep -q '== [a-z0-9]* TIMEOUT' <<<"$L" && fail "a domain did not finish: $(grep '== [a-z0-9]* TIMEOUT' <<<"$L")"
  pair_verdict guest stubdom
}

refusal_verdict() {
  local want="STUBDOM FAIL: XENMEM_acquire_resource into a PVH/HVM domain needs Xen 4.19 or later; the running hypervisor is $rel"
  common_verdict
  grep -q "$want" <<<"$S" || fail "the stub domain did not refuse with \"${want#STUBDOM FAIL: }\""
  echo "ok   stub domain on Xen $rel: \"$(grep -m1 -o 'XENMEM_acquire_resource into.*' <<<"$S")\"; it powered off, the guest ran unserved: $n checks passed (all-ones reads, dropped writes); $ms ms of QEMU"
  summary+=("$rel|refusal: XENMEM_acquire_resource needs 4.19|guest unserved, $n checks passed, not blocked|-")
}

serve_verdict() {
  common_verdict
  served_verdict stubdom "direct V[a-z]*call"
  grep -q '== RUST1 EXIT 0' <<<"$L" || fail "the dom0 server did not exit cleanly"
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
  echo "     set-up:       $(grep -m1 -o 'STUBDOM backend: .*' <<<"$S"); $(grep -m1 -o 'STUBDOM regbank: serving .*' <<<"$S")"
  echo "     idle:         CPU time $t0 s -> $t1 s over 2 s (waits in SCHEDOP_poll)"
  echo "     heap:         ${heap#STUBDOM heap: }"
  echo "     per read:     (instructions of the whole machine, $nr reads each) stub domain $(awk -v s="$st" -v n="$nr" 'BEGIN { printf "%.0f", s / n }'), dom0 Rust server $(awk -v s="$ru" -v n="$nr" 'BEGIN { printf "%.0f", s / n }'): dom0/stub = $(awk -v s="$st" -v r="$ru" 'BEGIN { printf "%.4f", r / s }')x"
  echo "     split:        stub domain: $(split "$sw") (guest = the guest and the stub domain, both below 4 GiB; kernel and user: dom0 meanwhile); dom0 server: $(split "$rw")"
  summary+=("$rel|serve: $n guest checks|stop request, clean teardown|$(awk -v s="$st" -v r="$ru" 'BEGIN { printf "%.2fx", r / s }')")
  audit_verdict
}

# served_verdict STUBDOM BACKEND: the pair last checked by pair_verdict was served to the end:
# the backend asked for, no failure, the guest's stop request seen, a clean teardown, nothing
# allocated while serving.
served_verdict() {
  grep -q "STUBDOM backend: $2" <<<"$S" || fail "$1 did not use the backend $2: $(grep 'STUBDOM backend' <<<"$S")"
  grep -q 'STUBDOM FAIL' <<<"$S" && fail "$1 failed: $(grep -m1 'STUBDOM FAIL' <<<"$S")"
  grep -q 'STUBDOM regbank: stop requested by the guest' <<<"$S" || fail "the guest's stop request did not reach $1"
  grep -q 'STUBDOM stopped cleanly' <<<"$S" || fail "$1 did not stop cleanly"
  grep -q ', 0 while serving' <<<"$S" || fail "$1 allocated while serving: $heap"
}

# The second pair: the audited stub domain on the hypercall page. Each request's slot must be
# read as one load of its state word and one copy of the other three words, the 32-byte slot
# once (nothing else but the event port's word, 8 bytes at set-up), every answer must follow
# exactly one copy, and every state write must move the slot forward (READY -> INPROCESS ->
# IORESP_READY).
audit_verdict() {
  pair_verdict guest2 stubdom2
  served_verdict stubdom2 "hypercall page"
  local a r bytes st cp other inp resp back
  a=$(grep -m1 -o 'STUBDOM audit: .*' <<<"$S" || true)
  r=$(grep -m1 -o 'regbank: stopped after [0-9]* requests' <<<"$S" | grep -o '[0-9]*' || true)
  [ -n "$a" ] && [ -n "$r" ] || fail "the audited stub domain reported no audit or no request count"
  read -r bytes st cp other inp resp back < <(sed 's/^STUBDOM audit: read \([0-9]*\) B = \([0-9]*\) state words + \([0-9]*\) x 24 copied + \([0-9]*\) other; wrote \([0-9]*\) INPROCESS, \([0-9]*\) IORESP_READY, \([0-9]*\) backward$/\1 \2 \3 \4 \5 \6 \7/' <<<"$a")
  [ -n "${back:-}" ] || fail "unparsable audit line: $a"
  [ "$other" = 8 ] || fail "the slot was read beyond the state words and the copies ($other bytes, want the 8 of the event port's word): $a"
  [ "$inp" = "$r" ] || fail "$r requests served but $inp INPROCESS writes: $a"
  [ "$cp" = "$resp" ] || fail "$cp copies for $resp answers: $a"
  [ $((cp - inp)) -le 1 ] || fail "more than one in-flight answer at teardown: $a"
  [ "$back" = 0 ] || fail "state writes moved a slot backwards: $a"
  echo "ok   audited stub domain on the hypercall page (Xen $rel): $n guest checks passed (string I/O backwards and across pages, MMIO as rep movsd source and destination, rep stosd), torn down on the stop request"
  echo "     slot reads:   $r requests; $bytes bytes read = $st state words x 8 + $cp copies x 24 + $other (the event port's word, once): each request's 32 bytes fetched once"
  echo "     state writes: $inp INPROCESS, $resp IORESP_READY ($((cp - inp)) answered at teardown), $back backward"
  summary+=("$rel|audited, hypercall page: $n guest checks|$cp copies for $r requests, 0 backward writes|-")
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
