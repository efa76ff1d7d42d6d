#!/usr/bin/env bash
# The IOREQ bench (xen/benches/ioreq.rs) in instructions instead of nanoseconds: each side
# (library, hand-written raw loop) run alone under callgrind at two request counts; the
# difference per request is that side's cost (posting the request on the simulator and collecting
# the answer included, the same for both sides). Instruction counts do not depend on the
# machine's load, so before/after figures compare on a busy machine.
#   tests/bench-insns.sh [BENCH-BINARY]   (default: built here with cargo bench --no-run)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  bin=$(cargo bench --locked -q -p xen --features sim --bench ioreq --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
fi
[ -x "$bin" ] || { echo "FAIL: no bench binary ($bin)"; exit 1; }
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed"; exit 1; }
total() { # side requests
  local f
  f=$(mktemp)
  BENCH_ONLY=$1 BENCH_REQUESTS=$2 valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" >/dev/null 2>&1
  awk '/^summary:/ { print $2 }' "$f"
  rm -f "$f"
}
lo=2000 hi=6000
# 4 rounds of N requests each (the bench's loop).
per() { awk -v a="$1" -v b="$2" -v n=$((4 * (hi - lo))) 'BEGIN { printf "%.1f", (b - a) / n }'; }
l=$(per "$(total lib $lo)" "$(total lib $hi)")
r=$(per "$(total raw $lo)" "$(total raw $hi)")
export BENCH_VIA=serve
s=$(per "$(total lib $lo)" "$(total lib $hi)")
echo "BENCH-INSNS library=$l raw=$r library_minus_raw=$(awk -v l="$l" -v r="$r" 'BEGIN { printf "%.1f", l - r }') library_serve_once=$s (instructions per request, simulator post and collect included; serve_once also the simulator's wait)"
