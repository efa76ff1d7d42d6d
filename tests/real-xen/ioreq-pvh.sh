#!/usr/bin/env bash
# Real IOREQ, per Xen release (IOREQ_RELEASES, 4.17 by default; tests/run.sh --all-releases: 4.14
# 4.17 4.20): Debian's Xen with that release's Linux PV dom0 (4.14: 5.10, 4.17: 6.1, 4.20: 6.12)
# and its own xenstored, xl and libraries (tests/lib/xen-releases.sh), the same Rust server binary
# on every release, the C server built statically on that release's libxen-dev.
#
# Where the release has every interface the server uses (4.15 and later), xl creates
# the project's freestanding PVH guest paused, the Rust server (xen's regbank example on the
# xen::linux platform) claims its device, the guest is unpaused and checks every answer itself
# (MMIO of 1/2/4/8 bytes, port I/O, rep outsb/insb through guest RAM, unclaimed, straddling and
# released accesses) and times N reads. Then, in the same boot: SIGTERM (clean teardown, the
# range reads all-ones), the C baseline on Xen's stable libraries serves the same timed loop, a
# new Rust server, SIGKILL of it, and yet another Rust server that must still work. strace -f
# counts the system calls of both servers. A wrong domid must fail naming the dm_op and errno.
# Last, Debian's Linux boots as a PVH guest of a new Rust server, checks the device with busybox
# devmem (8/16/32/64-bit) and balloons down, so the server must complete Xen's INVALIDATE
# broadcasts (tests/lib/linux-pvh-domu.sh).
#
# Where it lacks one (4.14 has no XEN_DMOP_nr_vcpus), the server must refuse at once with the
# typed version error naming the operation and the release it needs, and exit; the guest, with
# "unserved" on its command line, then checks that its device accesses complete (all-ones reads,
# dropped writes) instead of blocking, and powers off.
#
# Throughput is measured in instructions: QEMU runs with -icount, so the guest's TSC counts the
# instructions the whole machine executes (1 tick each) and is independent of the host's speed
# and load, and a QEMU plugin (insn-windows.c) splits each timed loop between Xen, the dom0
# kernel and the server's user space.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
ensure_debian_rust >/dev/null

. tests/lib/real-xen.sh
. tests/lib/linux-pvh-domu.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
# Debian's current kernel: the Linux PVH guest's on every release (and 4.17's dom0).
ensure_debian_kernel

# The guest, the server and the plugin (tests/lib/dom0-initramfs.sh).
build_ioreq_programs "$out"
echo "     regbank $(sha256sum "$server" | cut -c1-16), guest $(sha256sum "$guest" | cut -c1-16) (sha256): the same files on every release (regbank: the file linux-dom0.sh ran)"
gcc -O2 -Wall -Wextra -Werror -static -pthread -o "$out/mmio-bench" tests/real-xen/mmio-bench.c
# A PV guest to show a non-HVM target is refused: the PV test kernel, created paused, never run.
(cd tests/xen-pv-dom0 && RUSTFLAGS="-C relocation-model=static" cargo build --locked -q --release \
  --target x86_64-unknown-linux-gnu --target-dir "$out/pv-dom0")
pv="$out/pv-dom0/x86_64-unknown-linux-gnu/release/xen-pv-dom0-test"

# dom0 initramfs for a release (tests/lib/dom0-initramfs.sh) with the C server built on its
# libxen-dev, the servers and the guests. MODE: serve (the full scenario) or refusal (the server
# must refuse; the guest runs unserved).
make_initramfs() { # release mode cpio
  rel=$1 ir="$out/ioreq-initramfs-$1"
  dom0_initramfs "$rel" "$ir"
  # The C server only where it serves (4.14's libxendevicemodel has no xendevicemodel_nr_vcpus
  # either: the C server does not build there).
  if [ "$2" = serve ]; then
    release_c "$ir/cserver" tests/c-server/cserver.c -lxendevicemodel -lxenforeignmemory \
      -lxenevtchn -lxencall -lxentoolcore -lxentoollog
  fi
  cp "$guest" "$ir/guest.elf"
  cp "$pv" "$ir/pv.elf"
  cp "$server" "$ir/regbank"
  echo "$2" >"$ir/etc/scenario"
  build_linux_domu "$ir" "$out/mmio-bench"
  cat >"$ir/etc/xen/pv.cfg" <<'CFG'
name = "pvguest"
type = "pv"
kernel = "/pv.elf"
memory = 16
vcpus = 1
CFG
  cat >"$ir/etc/xen/guest.cfg" <<'CFG'
name = "guest"
type = "pvh"
kernel = "/guest.elf"
memory = 16
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
  sed 's/^kernel = .*/&\ncmdline = "unserved"/' "$ir/etc/xen/guest.cfg" >"$ir/etc/xen/unserved.cfg"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
if [ "$(cat /etc/scenario)" = refusal ]; then
  # The server must refuse before it claims anything; the guest must then run unblocked.
  xl create -p /etc/xen/unserved.cfg
  domid=$(xl domid guest)
  echo "== guest domain $domid (unserved)"
  timeout 30 /regbank "$domid" 2>&1
  echo "== refusal exit $?"
  xl unpause guest
  gone guest 60
  reboot -f
fi
echo "== xl create -p"
xl create -p /etc/xen/guest.cfg
domid=$(xl domid guest)
echo "== guest domain $domid"
echo "== wrong domid:"; /regbank 999 2>&1; echo "== wrong domid exit $?"
echo "== dom0 (PV) as the target:"; /regbank 0 2>&1; echo "== dom0 target exit $?"
xl create -p /etc/xen/pv.cfg
echo "== PV guest as the target:"; /regbank "$(xl domid pvguest)" 2>&1; echo "== PV target exit $?"
xl destroy pvguest
serve_until RUST1 regbank "regbank: phase 1" /tmp/r1.log guest /regbank "$domid"
serve_until C1 cserver "cserver: phase 2" /tmp/c1.log - /cserver "$domid"
serve_until RUST2 regbank "regbank: phase 3" /tmp/r2.log - strace -f -o /tmp/strace-rust.txt /regbank "$domid"
serve_until C2 cserver "cserver: phase 4" /tmp/c2.log - strace -f -o /tmp/strace-c.txt /cserver "$domid"
serve /tmp/r3.log /regbank "$domid"
wait_for "regbank: phase 5" /tmp/r3.log
# Kill it once the guest has its answer to the phase write (a kill before the answer would leave
# the guest's vCPU waiting on a dead server): the guest says so on Xen's console.
console_wait "GUEST phase 5 answered" 60
kill -KILL $p
wait $p
echo "== RUST3 KILLED $?"
drain /tmp/r3.log >/dev/null
serve /tmp/r4.log /regbank "$domid" 5100
wait_for "regbank: phase 6" /tmp/r4.log
gone guest 60
stop regbank $p RUST4; drain /tmp/r4.log
# Optional part: a 2-vCPU Linux PVH guest on the same device: devmem checks and a two-thread timed
# loop against the Rust server, the C server (the guest's phase writes tell when to swap), then a
# Rust server that waits with poll(2) on a non-blocking descriptor (Linux::open_nonblocking) for
# the rest and for the INVALIDATE broadcasts of the balloon.
xl create -p /etc/xen/linux.cfg
ldom=$(xl domid linux)
serve_until RUST5 regbank "regbank: phase 7" /tmp/r5.log linux /regbank "$ldom"
serve_until C5 cserver "cserver: phase 8" /tmp/c5.log - /cserver "$ldom"
serve /tmp/r6.log /regbank "$ldom" --poll
gone linux 120
stop regbank $p RUST6; drain /tmp/r6.log
tr -d '\r' </var/log/xen/guest-linux.log | grep -E '^LINUX ' || echo "== no output from the Linux guest"
echo "== strace rust $(count_syscalls /tmp/strace-rust.txt regbank)"
echo "== strace c $(count_syscalls /tmp/strace-c.txt cserver)"
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$3"
}
# The refusal scenario's verdict: the typed version error, exit status 1 within the bound, the
# guest's unserved checks all passing and the guest gone (it powered off: nothing blocked it).
refusal_verdict() {
  local said want="regbank: XEN_DMOP_nr_vcpus needs Xen 4.15 or later; the running hypervisor is $rel"
  grep -E 'GUEST CHECK|GUEST RESULT' <<<"$L" | sed 's/^(XEN) //' || true
  boot_verdict
  said=$(grep -m1 '^regbank: ' <<<"$L" || true)
  [ "$said" = "$want" ] || fail "regbank on Xen $rel said \"$said\", want \"$want\""
  grep -q '^== refusal exit 1$' <<<"$L" || fail "regbank did not exit with status 1 (124: it hung): $(grep '^== refusal exit' <<<"$L")"
  grep -q 'GUEST CHECK .*: FAIL' <<<"$L" && fail "failing guest checks"
  grep -q 'GUEST RESULT: PASS' <<<"$L" || fail "no GUEST RESULT: PASS line from the unserved guest"
  grep -q '== guest TIMEOUT' <<<"$L" && fail "the unserved guest did not power off"
  grep -q '^== guest gone after' <<<"$L" || fail "the unserved guest's end was not seen"
  n=$(grep -c 'GUEST CHECK unserved.*: ok' <<<"$L")
  echo "ok   IOREQ on real Xen $rel (Linux $kver dom0, Xen $rel's xl): \"$said\", exit status 1, nothing claimed; the guest ran unserved: $n checks passed (all-ones reads, dropped writes), powered off; $ms ms of QEMU"
  summary+=("$rel|refusal: $said|guest unserved, $n checks passed, not blocked|-|-")
}

# The serve scenario's verdict (figures in instructions, -icount).
serve_verdict() {
  grep -E 'GUEST CHECK|GUEST TIMING|^LINUX ' <<<"$L" | sed 's/^(XEN) //' || true
  boot_verdict
  grep -q 'GUEST CHECK .*: FAIL' <<<"$L" && fail "failing guest checks"
  grep -q 'GUEST RESULT: PASS' <<<"$L" || fail "no GUEST RESULT: PASS line"
  for s in RUST1 C1 RUST2 C2 RUST4 RUST5 C5 RUST6; do
    grep -q "== $s EXIT 0" <<<"$L" || fail "server $s did not exit cleanly on SIGTERM"
  done
  grep -q '== RUST3 KILLED 137' <<<"$L" || fail "server RUST3 was not killed"
  [ "$(grep -c 'regbank: stopped after .* requests, torn down' <<<"$L")" -ge 3 ] || fail "a Rust server did not report its teardown"
  grep -q 'XEN_DMOP_nr_vcpus: ESRCH (errno 3)' <<<"$L" || fail "a wrong domid did not fail with the dm_op and ESRCH"
  grep -A1 '== dom0 (PV) as the target:' <<<"$L" | grep -q 'XEN_DMOP_nr_vcpus: [A-Z0-9 ]*(errno [0-9]*)' || fail "dom0 as the target did not fail with the dm_op and its errno"
  grep -A3 '== PV guest as the target:' <<<"$L" | grep -q 'regbank: XEN_DMOP_nr_vcpus: EINVAL (errno 22)' || fail "a PV guest as the target did not fail with the dm_op and EINVAL"
  grep -q 'LINUX CHECK .*: FAIL' <<<"$L" && fail "failing checks in the Linux guest"
  grep -q '^LINUX DONE' <<<"$L" || fail "the Linux guest did not finish its checks"
  grep -q 'regbank: polling a non-blocking evtchn descriptor' <<<"$L" || fail "the Linux guest's server did not run in --poll mode"
  inv=$(grep -A3 '== RUST6 EXIT' <<<"$L" | grep -m1 -o '([0-9]* invalidations' | grep -o '[0-9]*' || true)
  [ -n "$inv" ] && [ "$inv" -gt 0 ] || fail "the Linux guest's balloon did not reach the server as INVALIDATE requests"
  n=$(grep -c 'GUEST CHECK .*: ok' <<<"$L")
  lc=$(grep -c '^LINUX CHECK .*: ok' <<<"$L")
  echo "ok   IOREQ on real Xen $rel (Linux $kver dom0, Xen $rel's xl and C libraries): $n guest checks passed; SIGTERM, C baseline, SIGKILL and restart in one boot; $ms ms of QEMU"
  echo "     Linux guest:  $lc devmem/balloon checks passed on 2 vCPUs; $inv INVALIDATE requests completed (server in --poll mode: non-blocking evtchn in a poll(2) loop)"
  echo "     wrong domid:  $(grep -m1 'XEN_DMOP_nr_vcpus: ESRCH (errno 3)' <<<"$L")"
  echo "     dom0 target:  $(grep -A1 '== dom0 (PV) as the target:' <<<"$L" | tail -1)"
  echo "     PV guest:     $(grep -A3 '== PV guest as the target:' <<<"$L" | grep -m1 'regbank:')"
  # Throughput, same boot, same guest loop: TSC ticks (= instructions, -icount) for N reads, and
  # the plugin's split of each timed loop (its windows come in the order of the TIMING lines).
  timing() { grep -o "GUEST TIMING $1 reads=[0-9]* tsc=[0-9]*" <<<"$L" | sed 's/.*tsc=//'; }
  rt=$(timing rust); ct=$(timing c); ra=$(timing rust-again)
  nr=$(grep -o 'GUEST TIMING rust reads=[0-9]*' <<<"$L" | sed 's/.*reads=//')
  [ -n "$rt" ] && [ -n "$ct" ] && [ -n "$ra" ] && [ -n "$nr" ] || fail "missing timing lines"
  labels=$(grep -o 'GUEST TIMING [a-z-]* ' <<<"$L" | awk '{ print $3 }')
  windows=$(grep -o 'INSN window [0-9]*: .*' <<<"$L" || true)
  [ "$(wc -l <<<"$labels")" = "$(grep -c . <<<"$windows")" ] || fail "the plugin saw $(grep -c . <<<"$windows") timed loops, the guest reported $(wc -l <<<"$labels")"
  insn_split() { # label: "Xen X + dom0 kernel K + server U + guest G" per read
    paste -d' ' <(echo "$labels") <(echo "$windows") | awk -v l="$1" -v n="$nr" '$1 == l {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "Xen %.0f + dom0 kernel %.0f + server %.0f + guest %.0f", v["xen"] / n, v["kernel"] / n, v["user"] / n, v["guest"] / n }'
  }
  ratio() { awk -v r="$1" -v c="$2" 'BEGIN { printf "%.4f", c / r }'; }
  per() { awk -v s="$1" -v q="$2" 'BEGIN { printf "%.2f", s / q }'; }
  echo "     throughput:   (instructions per read of the whole machine, $nr reads each, untraced) Rust $(per "$rt" "$nr"), then C $(per "$ct" "$nr"), then Rust $(per "$ra" "$nr"); Rust/C = $(ratio "$rt" "$ct")x timed before C, $(ratio "$ra" "$ct")x timed after C, $(ratio "$(( (rt + ra) / 2 ))" "$ct")x on the mean (goal >= 1.0)"
  echo "     per read:     Rust: $(insn_split rust); C: $(insn_split c)"
  for l in rust c; do
    insn_split $l | grep -q ' + server [1-9][0-9]* + ' || fail "the plugin counted no server instructions in the $l loop"
  done
  # The Linux guest's two-thread loop (both vCPUs with requests in flight): TSC = instructions too.
  bench() { grep -o "^LINUX BENCH $1 threads=2 reads=[0-9]* tsc=[0-9]*" <<<"$L" | sed 's/.*tsc=//'; }
  br=$(bench rust); bc=$(bench c); ba=$(bench rust-again)
  bn=$(grep -m1 -o '^LINUX BENCH rust threads=2 reads=[0-9]*' <<<"$L" | sed 's/.*reads=//')
  multi=$(grep -A3 '== RUST5 EXIT' <<<"$L" | grep -m1 -o '[0-9]* wake-ups with several events' | grep -o '^[0-9]*' || true)
  [ -n "$br" ] && [ -n "$bc" ] && [ -n "$ba" ] && [ -n "$bn" ] && [ -n "$multi" ] || fail "missing two-vCPU timing lines"
  echo "     2 vCPUs:      (Linux guest, 2 threads on 2 vCPUs, instructions per read, $bn reads each) Rust $(per "$br" "$bn"), then C $(per "$bc" "$bn"), then Rust $(per "$ba" "$bn"); Rust/C = $(ratio "$br" "$bc")x before C, $(ratio "$ba" "$bc")x after C, $(ratio "$(( (br + ba) / 2 ))" "$bc")x on the mean; $multi Rust wake-ups served several events with one read and one unmask"
  # System calls per request, from full strace logs of the second run of each server: in total
  # (set-up and teardown included) and while serving (the steady state the goal is about).
  rs=$(grep -o '== strace rust total=[0-9]*' <<<"$L" | grep -o '[0-9]*$')
  cs=$(grep -o '== strace c total=[0-9]*' <<<"$L" | grep -o '[0-9]*$')
  rv=$(grep -o '== strace rust total=[0-9]* serving=[0-9]*' <<<"$L" | grep -o '[0-9]*$')
  cv=$(grep -o '== strace c total=[0-9]* serving=[0-9]*' <<<"$L" | grep -o '[0-9]*$')
  rq=$(grep -A3 '== RUST2 EXIT' <<<"$L" | grep -m1 -o 'regbank: stopped after [0-9]* requests' | grep -o '[0-9]*')
  cq=$(grep -A3 '== C2 EXIT' <<<"$L" | grep -m1 -o 'cserver: stopped after [0-9]* requests' | grep -o '[0-9]*')
  [ -n "$rs" ] && [ -n "$cs" ] && [ -n "$rv" ] && [ -n "$cv" ] && [ -n "$rq" ] && [ -n "$cq" ] \
    || fail "missing strace or request counts"
  [ "$rq" -gt 0 ] && [ "$cq" -gt 0 ] && [ "$rv" -gt 0 ] && [ "$cv" -gt 0 ] || fail "a traced server served nothing"
  echo "     syscalls:     (strace -f, second run of each server) while serving: Rust $rv for $rq requests ($(per "$rv" "$rq")/request), C $cv for $cq requests ($(per "$cv" "$cq")/request) (goal <= 3 for Rust); with set-up and teardown: Rust $(per "$rs" "$rq"), C $(per "$cs" "$cq")/request"
  summary+=("$rel|serve: $n guest checks, Linux guest $lc checks, $inv invalidations|clean teardown, SIGKILL, restart|$(ratio "$(( (rt + ra) / 2 ))" "$ct")x|$(ratio "$(( (br + ba) / 2 ))" "$bc")x")
}

summary=()
for rel in ${IOREQ_RELEASES:-4.17}; do
  release_dom0 "$rel"
  mode=refusal
  release_at_least "$rel" 4.15 && mode=serve
  make_initramfs "$rel" "$mode" "$out/ioreq-initramfs-$rel.cpio"
  log="$out/ioreq-pvh-$rel.log"
  boot_dom0 "$out/ioreq-initramfs-$rel.cpio" "$mode"
  FAIL_TAIL=60
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  "${mode}_verdict"
done
echo "     release | scenario | result | Rust/C 1 vCPU (mean) | Rust/C 2 vCPUs (mean)"
printf '     %s\n' "${summary[@]}" | sed 's/|/ | /g'
