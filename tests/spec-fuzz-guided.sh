#!/usr/bin/env bash
# Coverage-guided fuzzing of the spec: the cargo-fuzz target `spec` (xen-abi-gen/fuzz, libFuzzer)
# built with the pinned nightly of tests/lib/race-toolchain.sh (cargo-fuzz installed from
# crates.io into the same cache) and run for a fixed number of executions with a fixed seed,
# from a corpus seeded with the in-tree abi-spec/**/*.toml. Each input is one spec file's text,
# loaded with the rest of the in-tree spec; the promise (xen_abi_gen::fuzzing::check, shared
# with xen-abi-gen/tests/spec_fuzz.rs): no panic, a refused spec gets diagnostics that all point
# at a file:line:column, an accepted one generates modules that all parse (compiling is left to
# spec_fuzz.rs's sample: seconds an input). Built with debug assertions (overflow checks on)
# and no sanitizer: xen-abi-gen has no unsafe code, and a sanitizer would slow every execution.
#
# Controls first, on one small input each: a clean run's count is parsed exactly and a run short
# of its count is judged a failure; the check made to break on purpose (SPEC_FUZZ_TAMPER:
# every generated module unparsable, or a refusal's diagnostic unlocated) must crash the target,
# the fuzzing run then judged a failure with a reproducer. Then the run, one line:
#   SPEC FUZZ GUIDED runs=N seed=S seeds=F corpus=C cov=E verdict=pass|fail
# (runs from libFuzzer's `Done N runs` line, corpus and cov from its last status line). A crash,
# timeout or out-of-memory is verdict=fail with the reproducer's path and how to rerun it, and
# exit 1. A longer run: SPEC_FUZZ_RUNS=20000 SPEC_FUZZ_SEED=7 tests/spec-fuzz-guided.sh.
# The seed fixes libFuzzer's choices, not the coverage fed back to them (xen-abi-gen's std
# HashMaps, for one, hash with random keys), so the corpus and cov differ a little from run to
# run; the count and the check do not. 3,000 executions take about 2.5 minutes on a busy two-core
# machine (about 20 a second: each accepted input generates every module).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${SPEC_FUZZ_RUNS:-3000}
SEED=${SPEC_FUZZ_SEED:-24}
. tests/lib/race-toolchain.sh
ensure_race_toolchain
ensure_cargo_fuzz
export PATH="$RACE_BIN:$PATH"
out="${CARGO_TARGET_DIR:-$PWD/target}/spec-fuzz-guided"
mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

# The build (cargo fuzz build has no --locked: the fetch proves the lock file current).
cargo fetch --locked -q --manifest-path xen-abi-gen/fuzz/Cargo.toml </dev/null ||
  fail "xen-abi-gen/fuzz/Cargo.lock is not up to date (after a change to xen-abi-gen's dependencies: cargo update --workspace --manifest-path xen-abi-gen/fuzz/Cargo.toml)"
if ! "$CARGO_FUZZ" build --fuzz-dir xen-abi-gen/fuzz --sanitizer none --debug-assertions \
  --target-dir "$out/build" spec </dev/null >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  fail "cargo fuzz build of the spec target"
fi
bin="$out/build/x86_64-unknown-linux-gnu/release/spec"
[ -x "$bin" ] || fail "cargo fuzz build made no $bin"

# The seeds: every in-tree spec file, named by its path.
rm -rf "$out/seeds" "$out/control-seeds"
mkdir -p "$out/seeds" "$out/control-seeds"
while IFS= read -r f; do
  cp "$f" "$out/seeds/$(tr / _ <<<"${f#abi-spec/}")"
done < <(find abi-spec -name '*.toml' | sort)
seeds=$(find "$out/seeds" -type f | wc -l)
[ "$seeds" -gt 0 ] || fail "no seeds in abi-spec/"

# fuzz NAME RUNS SEED_DIR [VAR=VALUE...]: libFuzzer for RUNS executions (seed $SEED) from a fresh
# corpus and SEED_DIR's files, with the environment given. Sets rc, done_runs, corpus, cov and
# reproducer (the crash, timeout or out-of-memory input libFuzzer wrote, if any); log in
# $out/NAME.log.
fuzz() {
  local name=$1 runs=$2 seed_dir=$3
  shift 3
  rm -rf "$out/$name-corpus" "$out/$name-artifacts"
  mkdir -p "$out/$name-corpus" "$out/$name-artifacts"
  set +e
  # Bounded twice over: by the count, and by the clock should an input hang (-timeout: one
  # input over 30 s is a failure; a normal one takes well under a second).
  env "$@" timeout 1200 "$bin" -runs="$runs" -seed="$SEED" -timeout=30 \
    -dict=xen-abi-gen/fuzz/spec.dict -artifact_prefix="$out/$name-artifacts/" \
    -print_final_stats=1 "$out/$name-corpus" "$seed_dir" </dev/null >"$out/$name.log" 2>&1
  rc=$?
  set -e
  done_runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs in .*/\1/p' "$out/$name.log" | tail -1)
  corpus=$(sed -n 's/.* corp: \([0-9][0-9]*\)\/.*/\1/p' "$out/$name.log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9][0-9]*\) .*/\1/p' "$out/$name.log" | tail -1)
  reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out/$name.log" |
    grep -v '/slow-unit-' | head -1 || true)
}
# judge WANT: the last fuzz run passed: libFuzzer exited 0, its Done line counts at least WANT
# (> 0) executions, and it wrote no reproducer.
judge() {
  [ "$rc" = 0 ] && [ "$1" -gt 0 ] && [[ ${done_runs:-} =~ ^[0-9]+$ ]] &&
    [ "$done_runs" -ge "$1" ] && [ -z "$reproducer" ]
}
# broken: the last fuzz run's panic message (the promise it broke).
broken() { grep -A4 -m1 'SPEC FUZZ PROMISE BROKEN\|panicked at' "$out/$1.log" || tail -20 "$out/$1.log"; }

# Control 1: a clean run from the smallest file; its count is what was asked, and one more is
# a failure (a run short of its executions does not pass).
cp abi-spec/physdev.toml "$out/control-seeds/physdev.toml"
fuzz control-count 10 "$out/control-seeds" SPEC_FUZZ_TAMPER=
if ! judge 10 || [ "$done_runs" != 10 ]; then
  broken control-count
  fail "control: a clean 10-run fuzz from physdev.toml (rc=$rc runs=${done_runs:-none})"
fi
if judge 11; then fail "control: a 10-run fuzz passed as 11 runs"; fi
echo "ok   control: a clean run of 10 executions is counted 10 (rc=0), and fails as 11"

# Control 2: with every generated module made unparsable, the same run must be a crash with a
# reproducer.
fuzz control-unparse 10 "$out/control-seeds" SPEC_FUZZ_TAMPER=unparse
if judge 10 || [ -z "$reproducer" ] || ! grep -q 'does not parse' "$out/control-unparse.log"; then
  tail -20 "$out/control-unparse.log"
  fail "control: unparsable generated code was not reported (rc=$rc reproducer=${reproducer:-none})"
fi
echo "ok   control: unparsable generated code is a crash (rc=$rc, reproducer $(basename "$reproducer"))"

# Control 3: a refused file (a repr that is no integer type), run once: it passes as it is
# (refused with located diagnostics), and with the first diagnostic's location dropped it must
# be a crash.
refused="$out/control-refused.toml"
sed '0,/repr = "u32"/s//repr = "u33"/' abi-spec/sched.toml >"$refused"
grep -q 'repr = "u33"' "$refused" || fail "control: sched.toml has no repr u32 to break"
SPEC_FUZZ_TAMPER='' "$bin" "$refused" </dev/null >"$out/control-refused.log" 2>&1 ||
  { tail -20 "$out/control-refused.log"; fail "control: the refused sched.toml crashed the target"; }
set +e
SPEC_FUZZ_TAMPER=unlocate "$bin" "$refused" </dev/null >"$out/control-unlocate.log" 2>&1
rc=$?
set -e
if [ "$rc" = 0 ] || ! grep -q 'unlocated or internal: abi-spec/sched.toml:0:' "$out/control-unlocate.log"; then
  tail -20 "$out/control-unlocate.log"
  fail "control: an unlocated diagnostic was not reported (rc=$rc)"
fi
echo "ok   control: a refused spec passes, and with its diagnostic unlocated is a crash (rc=$rc)"

# The run.
start=$SECONDS
fuzz run "$RUNS" "$out/seeds" SPEC_FUZZ_TAMPER=
secs=$((SECONDS - start))
line="SPEC FUZZ GUIDED runs=${done_runs:-0} seed=$SEED seeds=$seeds corpus=${corpus:-0} cov=${cov:-0}"
if judge "$RUNS"; then
  echo "$line verdict=pass (${secs}s)"
  exit 0
fi
executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/run.log" | tail -1)
echo "$line verdict=fail (${secs}s, libFuzzer exit $rc after ${executed:-no} executions; $RUNS runs asked)"
if [ -n "$reproducer" ]; then
  broken run
  echo "reproducer: $reproducer"
  echo "rerun it:   $bin $reproducer"
else
  tail -20 "$out/run.log"
fi
exit 1
