#!/usr/bin/env bash
# Data races in the xen crate's suites, found by ThreadSanitizer: every test of `xen` (the
# hostile guest and its scribbling writer thread, the fetch audit, the simulator, guest memory,
# the bare backend, xenstore) built with `-Zsanitizer=thread` over a standard library rebuilt
# with it, `--cfg xen_fetch_audit` on so the hostile and audit suites run too. A report fails
# the check. First a control: a program with a known race (tests/race-control) built and run
# the same way must be reported, or the check could not fail.
#   tests/race-check.sh   (prints RACE-CHECK lines: name verdict figures)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/race-toolchain.sh
ensure_race_toolchain
export PATH="$RACE_BIN:$PATH"
host=x86_64-unknown-linux-gnu
out="${CARGO_TARGET_DIR:-$PWD/target}/race"
mkdir -p "$out"
tsan() { # cargo arguments...: build and run under ThreadSanitizer (std rebuilt with it)
  RUSTFLAGS="-Zsanitizer=thread --cfg xen_fetch_audit" RUSTDOCFLAGS="-Zsanitizer=thread" \
    TSAN_OPTIONS="exitcode=66 report_signal_unsafe=0" \
    cargo "$@" -Zbuild-std --target "$host" --release
}

# The control: the race must be reported.
set +e
(cd tests/race-control && CARGO_TARGET_DIR="$out/control" tsan run --locked -q) \
  >"$out/control.txt" 2>&1
rc=$?
set -e
reports=$(grep -c 'WARNING: ThreadSanitizer: data race' "$out/control.txt" || true)
if [ "$rc" = 0 ] || [ "$reports" = 0 ]; then
  echo "RACE-CHECK control FAIL rc=$rc reports=$reports (a known race was not reported)"
  tail -20 "$out/control.txt"
  exit 1
fi
echo "RACE-CHECK control pass rc=$rc reports=$reports (the known race is reported)"

# The suites.
set +e
CARGO_TARGET_DIR="$out/suites" tsan test --locked -p xen --features sim,virtio --tests \
  >"$out/suites.txt" 2>&1
rc=$?
set -e
reports=$(grep -c 'WARNING: ThreadSanitizer' "$out/suites.txt" || true)
binaries=$(grep -c '^test result: ok\.' "$out/suites.txt" || true)
passed=$(awk '/^test result: ok\./ { p += $4 } END { print p + 0 }' "$out/suites.txt")
# The hostile and audit suites must have run (they are empty without the cfg).
ran() { awk -v t="$1" '/Running tests\// { cur = ($2 == "tests/" t ".rs") }
  cur && /^test result: ok\. [1-9]/ { ok = 1 } END { exit !ok }' "$out/suites.txt"; }
if [ "$rc" != 0 ] || [ "$reports" != 0 ] || ! ran hostile || ! ran audit; then
  echo "RACE-CHECK suites FAIL rc=$rc reports=$reports binaries=$binaries tests=$passed"
  grep -A30 -m3 'WARNING: ThreadSanitizer' "$out/suites.txt" || tail -40 "$out/suites.txt"
  exit 1
fi
echo "RACE-CHECK suites pass rc=0 reports=0 binaries=$binaries tests=$passed (hostile and audit included)"
