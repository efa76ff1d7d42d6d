#!/usr/bin/env bash
# Stability evidence for the real-Xen stages (outside CI): runs one stage, or all of them in turn,
# N times back to back on this machine, each run exactly as tests/run.sh runs it (no retries:
# a run passes once or fails), and prints one result line per run and a summary per stage:
#
#   SOAK stage=ioreq-pvh run=3/10 verdict=pass wall_s=214 busy=no
#   SOAK-SUMMARY stage=ioreq-pvh runs=10 passed=10 failed=0 wall_s_min=201 wall_s_median=214 wall_s_max=230 busy=no
#
# A failed run's first FAIL line is on its result line (cause=...) and its whole output is kept in
# target/soak/. With --busy, a CPU-bound job (one process spinning on one core) runs for the
# whole soak, so the stages run with the second core taken; its CPU time is printed at the end
# to show it really ran.
#
#   tests/soak.sh [--busy] STAGE|all N
#
# STAGE: pv-dom0 linux-dom0 ioreq-pvh virtio-pvh virtio-hvm ioreq-stubdom xenstore-grant arm64-dom0 arm64-linux (tests/real-xen/),
# with tests/run.sh's release lists (IOREQ_RELEASES, STUBDOM_RELEASES, ... override them).
# Exit status 0 only if every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."
stages_all="pv-dom0 linux-dom0 ioreq-pvh virtio-pvh virtio-hvm ioreq-stubdom xenstore-grant arm64-dom0 arm64-linux"
busy=no
if [ "${1:-}" = --busy ]; then busy=yes; shift; fi
[ $# = 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: tests/soak.sh [--busy] STAGE|all N   (STAGE: $stages_all)" >&2; exit 2
}
stages=$1 n=$2
[ "$stages" = all ] && stages=$stages_all
for s in $stages; do
  [ -x "tests/real-xen/$s.sh" ] || { echo "no stage $s (want one of: $stages_all)" >&2; exit 2; }
done
# The release lists tests/run.sh gives the stages (the others default to theirs).
export IOREQ_RELEASES=${IOREQ_RELEASES:-4.14 4.17}

logs="${CARGO_TARGET_DIR:-$PWD/target}/soak"
mkdir -p "$logs"
burner=
if [ $busy = yes ]; then
  # One process that never sleeps: on a 2-core machine it takes one core for the whole soak.
  sh -c 'while :; do :; done' &
  burner=$!
  trap 'kill $burner 2>/dev/null || true' EXIT
fi

failed_total=0
for s in $stages; do
  walls=()
  passed=0
  for i in $(seq 1 "$n"); do
    out="$logs/$s-$i.log"
    t0=$(date +%s)
    rc=0
    "tests/real-xen/$s.sh" >"$out" 2>&1 || rc=$?
    wall=$(($(date +%s) - t0))
    walls+=("$wall")
    if [ $rc = 0 ]; then
      passed=$((passed + 1))
      echo "SOAK stage=$s run=$i/$n verdict=pass wall_s=$wall busy=$busy"
    else
      cause=$(grep -m1 '^FAIL' "$out" || echo "exit status $rc, no FAIL line")
      echo "SOAK stage=$s run=$i/$n verdict=fail wall_s=$wall busy=$busy log=$out cause=\"$cause\""
    fi
  done
  read -r lo med hi < <(printf '%s\n' "${walls[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { print v[1], v[int((NR + 1) / 2)], v[NR] }')
  echo "SOAK-SUMMARY stage=$s runs=$n passed=$passed failed=$((n - passed)) wall_s_min=$lo wall_s_median=$med wall_s_max=$hi busy=$busy"
  failed_total=$((failed_total + n - passed))
done
if [ -n "$burner" ]; then
  ticks=$(awk '{ print $14 + $15 }' "/proc/$burner/stat")
  echo "SOAK-BUSY cpu_s=$((ticks / $(getconf CLK_TCK))) (the CPU time of the busy job over the soak)"
fi
[ $failed_total = 0 ]
