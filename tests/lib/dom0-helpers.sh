# Sourced by a dom0's init (copied into every dom0 initramfs as /etc/dom0-helpers.sh, after
# /etc/dom0.sh has set the system up) and by tests/real-xen/harness-selftest.sh on this machine:
# busybox sh functions that start, watch and stop servers and wait for domains. This shell is
# PID 1 in dom0, so every orphan's exit (xl's per-domain monitor, when its domain goes) reaches
# it as SIGCHLD at any moment: nothing here may block in a way a signal can break.

# System calls in a full strace (-f) log, each counted once (not its "resumed" half), in total
# and while serving: from the server's "serving" line to the SIGTERM that stops it.
count_syscalls() { # trace-file server-name
  awk -v pat="$2: serving" '
    /^([0-9]+ +)?(---|\+\+\+) |resumed>/ { if (on && index($0, "--- SIGTERM")) on = 0; next }
    { total++ }
    on == 1 { serving++ }
    index($0, pat) && on == "" { on = 1 }
    END { printf "total=%d serving=%d\n", total, serving }' "$1"
}
# A server's output reaches its log through a FIFO that the shell reads with blocking reads:
# polling the log (a grep forked every 50 ms) would compete with the timed loops for the CPU.
# busybox sh dies when a redirection of `exec` fails with EINTR, and opening a FIFO's read end
# blocks until a writer opens it: a SIGCHLD then (an orphan's exit) killed init. So no open here
# blocks: the shell holds the FIFO read-write first (never blocks), then opens the read end (a
# writer exists: no wait); the server writes to a copy of the read-write descriptor, which the
# shell then closes, so the server is the last writer and its exit is the reader's end of file.
# busybox's read builtin restarts itself after EINTR; it loses a partial line, but the servers
# write each line with one write (line-buffered stdout, atomic below PIPE_BUF).
FIFO=${FIFO:-/tmp/out.fifo}
serve() { # log command...: start the command in the background ($p), its output on fd 3
  log=$1; shift
  rm -f "$FIFO"; mkfifo "$FIFO"
  exec 4<>"$FIFO"
  exec 3<"$FIFO"
  "$@" >&4 2>&1 3<&- 4>&- &
  p=$!
  exec 4>&-
  : >"$log"
}
# Bounds in dom0 are guest time. Under -icount (the serve mode) guest time counts instructions,
# so a loaded host cannot trip a bound; elsewhere it is the host's time, and each bound is 100
# times or more the wait it guards (a server starts in well under a second).
wait_for() { # pattern log
  while IFS= read -r -t 120 l <&3; do
    echo "$l" >>"$2"
    case "$l" in *"$1"*) return 0 ;; esac
  done
  echo "== TIMEOUT waiting for $1 in $2:"; cat "$2"; return 1
}
drain() { # log: the rest of the output, once the server has exited
  cat <&3 >>"$1"; exec 3<&-; cat "$1"
}
stop() { # process-name background-pid label
  kill -TERM $(pidof "$1")
  wait "$2"
  echo "== $3 EXIT $?"
}
# Wait (bounded) until Xen's console (xl dmesg: the guests' and stub domains' lines) matches a
# grep pattern; polls, so not for use while a loop is timed.
console_wait() { # pattern bound-in-seconds
  local n=0
  until xl dmesg | grep -q "$1"; do
    sleep 0.1; n=$((n+1))
    [ $n -gt $(($2 * 10)) ] && { echo "== TIMEOUT waiting for console line $1"; return 1; }
  done
}
gone() { # domain-name bound-in-seconds: wait until it is destroyed (it powers off)
  n=0; while xl domid "$1" >/dev/null 2>&1; do
    sleep 1; n=$((n+1)); [ $n -gt "$2" ] && { xl destroy "$1"; echo "== $1 TIMEOUT"; return 1; }
  done
  echo "== $1 gone after ${n} s"
}
# Start a server (unpausing a guest once it serves, unless "-"), serve until its output shows a
# pattern (the guest's phase write), then SIGTERM it and collect its output.
serve_until() { # label process pattern log guest-to-unpause|- command...
  local label=$1 proc=$2 pat=$3 log=$4 guest=$5
  shift 5
  serve "$log" "$@"
  if [ "$guest" != - ]; then wait_for serving "$log"; xl unpause "$guest"; fi
  wait_for "$pat" "$log"
  stop "$proc" "$p" "$label"; drain "$log"
}
