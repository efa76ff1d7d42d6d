#!/usr/bin/env bash
# The real-Xen harness tested on this machine, in seconds, before any stage relies on it:
#  1. dom0's server helpers (tests/lib/dom0-helpers.sh) under busybox sh, the shell dom0's init
#     runs, with SIGCHLDs arriving while a server starts (as xl's monitors exiting do in dom0):
#     every line reaches the log and the shell survives. The old helper, which opened the FIFO's
#     read end with a blocking open, must die under the same storm (so this check can fail).
#  2. The failure report (tests/lib/real-xen.sh): a log where dom0's init died, Xen panicked, a
#     domain crashed or a wait in dom0 ran out is reported by that cause first, the symptom after.
#  3. QEMU's watchdog (qemu_bounded): a silent program is stopped and named, a slow program that
#     keeps printing is not.
# One line per check: "ok   <name>" or "FAIL: <name>: <what>"; exit status 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_LINUX_DOM0
. tests/lib/real-xen.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL: $1: $2"; failed=1; }

# --- 1. The helpers under a SIGCHLD storm ---------------------------------------------------
# A server that opens its output late (after 0.3 s, as a server's first write comes after its
# exec), prints "serving", then two more lines; meanwhile children of the shell exit every
# 20 ms, so SIGCHLDs arrive while the shell opens and reads the FIFO.
storm_script() { # helpers-file
  cat <<SH
FIFO=$work/out.fifo
. $1
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 0.0\$i & done
serve $work/server.log sh -c 'sleep 0.3; echo serving; sleep 0.1; echo phase 1; echo bye'
wait_for serving $work/server.log || exit 3
wait_for "phase 1" $work/server.log || exit 4
wait "\$p"
echo "server exit \$?" >>$work/server.log
drain $work/server.log >/dev/null
echo survived
SH
}
storm_script tests/lib/dom0-helpers.sh >"$work/new.sh"
runs=10 good=0
for _ in $(seq 1 $runs); do
  rm -f "$work/server.log"
  out=$(busybox sh "$work/new.sh" 2>&1 || true)
  if [ "$out" = survived ] &&
    [ "$(cat "$work/server.log")" = "$(printf 'serving\nphase 1\nserver exit 0\nbye')" ]; then
    good=$((good + 1))
  else
    bad "serve under SIGCHLDs" "shell said \"$out\", log: $(tr '\n' '|' <"$work/server.log")"
    break
  fi
done
[ $good = $runs ] && ok "serve/wait_for/drain under busybox sh with SIGCHLDs during the FIFO's open and reads: $runs of $runs runs kept every line, the shell survived"
# The mechanism of the old failure, in the same storm: a blocking open of the FIFO's read end
# (the old helper's `exec 3<FIFO`, here with the writer's open 0.3 s late, as a slow start made
# it in dom0) must die with EINTR, so the storm above is one that breaks a blocking open.
cat >"$work/old.sh" <<SH
rm -f $work/old.fifo; mkfifo $work/old.fifo
for i in 1 2 3 4 5; do sleep 0.0\$i & done
(sleep 0.3; exec echo hi >$work/old.fifo) >/dev/null 2>&1 &
exec 3<$work/old.fifo
read -r l <&3
echo "survived: \$l"
SH
out=$(timeout 20 busybox sh "$work/old.sh" 2>&1 || true)
# A writer left blocked by the dead shell gets its reader.
timeout 5 cat "$work/old.fifo" >/dev/null 2>&1 || true
case $out in
  *"Interrupted system call"*) ok "control: a blocking open of a FIFO's read end dies in the same storm: \"$(grep -m1 -o "can't open.*" <<<"$out")\"" ;;
  *) bad "control" "a blocking open survived the storm (\"$out\"): the storm no longer reproduces the race" ;;
esac

# --- 2. The failure report names the first cause --------------------------------------------
cause_is() { # name want log-text
  log="$work/cause.log"
  printf '%s\n' "$3" >"$log"
  hang=
  local got
  got=$(first_cause)
  [ "$got" = "$2" ] && ok "cause: $1" || bad "cause: $1" "got \"$got\", want \"$2\""
}
cause_is "dom0's init died (the flake of issue 28)" \
  "dom0 init died (exit code 0x00000100): /init: line 30: can't open /tmp/out.fifo: Interrupted system call" \
  "(XEN) (d1) GUEST CHECK ... and a write is dropped: ok (0xffffffffffffffff)
== stubdom gone after 0 s
/init: line 30: can't open /tmp/out.fifo: Interrupted system call
[    7.193924] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100
(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds."
cause_is "Xen panicked" "Xen panicked: FATAL TRAP: vector = 14 (page fault)" \
  "(XEN) ****************************************
(XEN) Panic on CPU 0:
(XEN) FATAL TRAP: vector = 14 (page fault)
(XEN) ****************************************"
cause_is "a freestanding domain panicked" \
  "domain d2 panicked: STUBDOM PANIC panicked at src/main.rs:10:5: boom" \
  "== guest 1, stubdom 2
(XEN) (d2) STUBDOM PANIC panicked at src/main.rs:10:5: boom
(XEN) (d1) GUEST RESULT: PASS (32 checks)"
cause_is "a guest triple-faulted" "d1v0 Triple fault - invoking HVM shutdown action 1" \
  "(XEN) d1v0 Triple fault - invoking HVM shutdown action 1
(XEN) d1v0 VMEXIT_SHUTDOWN"
cause_is "the no_std dom0 panicked" "dom0 kernel panicked: panicked at src/main.rs:3:1: x" \
  "CHECK a: ok
PANIC: panicked at src/main.rs:3:1: x"
cause_is "a wait in dom0 ran out" "TIMEOUT waiting for regbank: phase 1 in /tmp/r1.log:" \
  "== xl create -p
== TIMEOUT waiting for regbank: phase 1 in /tmp/r1.log:
regbank: serving"
cause_is "a step in dom0 failed, before the waits it made run out" \
  "FAILED: xl create made no domain vhvm" \
  "Parsing config from /etc/xen/vhvm.cfg
== FAILED: xl create made no domain vhvm
== TIMEOUT waiting for 'GUEST-SAYS-hello-dom0' in /tmp/from-guest"
cause_is "a clean boot has none" "" \
  "(XEN) Xen version 4.17.7
(XEN) (d1) GUEST RESULT: PASS (34 checks)
== guest gone after 0 s
(XEN) Hardware Dom0 shutdown: rebooting machine"
# fail() says the cause first, then the symptom.
printf '%s\n' "/init: line 30: can't open /tmp/out.fifo: Interrupted system call" \
  "[    7.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100" >"$work/cause.log"
out=$(log="$work/cause.log" hang='' fail "guest printed no GUEST RESULT: PASS line" 2>&1) || true
if [ "$(sed -n 1p <<<"$out")" = "FAIL: dom0 init died (exit code 0x00000100): /init: line 30: can't open /tmp/out.fifo: Interrupted system call" ] &&
  [ "$(sed -n 2p <<<"$out")" = "      (and then: guest printed no GUEST RESULT: PASS line)" ]; then
  ok "fail() names the death first, the symptom after"
else
  bad "fail() order" "$(head -2 <<<"$out" | tr '\n' '|')"
fi

# --- 3. The watchdog ------------------------------------------------------------------------
t0=$(date +%s)
rc=0
QEMU_IDLE_S=5 qemu_bounded "$work/q1.log" sh -c 'echo booting; sleep 600' || rc=$?
t=$(($(date +%s) - t0))
if [ $rc = 124 ] && [ "$hang" = "QEMU stopped as hung: no output for 5 s; its last line: booting" ] && [ $t -lt 30 ]; then
  ok "watchdog: a silent QEMU is stopped after 5 s without output and named ($t s)"
else
  bad "watchdog: silent" "rc=$rc after $t s, hang=\"$hang\""
fi
rc=0
QEMU_IDLE_S=5 qemu_bounded "$work/q2.log" sh -c 'for i in $(seq 1 7); do echo $i; sleep 2; done; exit 7' || rc=$?
if [ $rc = 7 ] && [ -z "$hang" ] && [ "$(tail -1 "$work/q2.log")" = 7 ]; then
  ok "watchdog: a slow QEMU that keeps printing runs past the idle bound to its own end (exit 7)"
else
  bad "watchdog: slow" "rc=$rc, hang=\"$hang\""
fi
exit $failed
