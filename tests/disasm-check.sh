#!/usr/bin/env bash
# The typed wrappers compile to the same instructions as a hand-written inline-asm hypercall:
# for each backend and target, xen-sys's asm probe (src/backend/asm_probe.rs) is compiled with
# --emit asm and `event_channel_op_send` through the backend must equal the hand-written
# function instruction for instruction. Cross targets use Debian's rustc-web and foreign std.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
ensure_debian_rust >/dev/null

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/disasm"
fail=0

# body FILE SYMBOL [call]: the instructions of SYMBOL, directives/comments dropped, local labels
# normalised; with "call", only up to the end of the hypercall's inline asm (the part a
# hand-written call must match; what follows is the same Rust result handling in both).
body() {
  awk -v sym="$2:" -v upto="${3:-}" '
    $1 == sym { p = 1; next }
    p && upto == "call" && /NO_APP/ { exit }
    p && /^\.Lfunc_end|^\.Ltmp.*:$|^\s*\.size\s/ { if ($0 ~ /Lfunc_end|\.size/) exit }
    p {
      line = $0; sub(/^[ \t]+/, "", line)
      if (line == "" || line ~ /^[.#@]/ || line ~ /^\/\//) next
      if (line ~ /^[A-Za-z_.$][A-Za-z0-9_.$]*:$/) next
      gsub(/\.LBB[0-9]+_/, ".LBB_", line)
      print line
    }' "$1"
}

check() { # target backend instruction-regex
  local target=$1 backend=$2 want=$3 s
  s=$(ls -t "$CARGO_TARGET_DIR/$target/release/deps/"xen_sys-*.s | head -1)
  local w h wsym="xen_sys_probe_${backend}_wrapper" hsym="xen_sys_probe_${backend}_handwritten" note=""
  # Identical functions may be merged by LLVM into an alias: that is the strongest "same".
  if grep -qE "^($wsym = $hsym|\.set $wsym, $hsym)\$" "$s"; then
    note=", identical: LLVM merged the two functions"
    wsym=$hsym
  elif grep -qE "^($hsym = $wsym|\.set $hsym, $wsym)\$" "$s"; then
    note=", identical: LLVM merged the two functions"
    hsym=$wsym
  fi
  w=$(body "$s" "$wsym" call)
  h=$(body "$s" "$hsym" call)
  local total
  total=$(body "$s" "$wsym" | wc -l)
  if [ -z "$w" ] || [ -z "$h" ]; then
    echo "FAIL $target $backend: probe functions not found in $s"; fail=1; return
  fi
  if ! grep -qE "$want" <<<"$w"; then
    echo "FAIL $target $backend: no instruction matching /$want/ in the wrapper:"; echo "$w"; fail=1; return
  fi
  if [ "$w" != "$h" ]; then
    echo "FAIL $target $backend: the wrapper differs from the hand-written call:"
    diff <(echo "$w") <(echo "$h") || true
    fail=1; return
  fi
  echo "ok   $target $backend: event_channel_op_send issues the hand-written call sequence ($(wc -l <<<"$w") instructions to the hypercall, $total in the function$note):"
  sed 's/^/       /' <<<"$w"
}

build() { # target cargo-runner...
  local target=$1; shift
  "$@" rustc --locked -q -p xen-sys --release --features asm-probe --lib --target "$target" \
    -- --emit asm -C codegen-units=1
}

build x86_64-unknown-linux-gnu cargo
check x86_64-unknown-linux-gnu vmcall '^vmcall'
check x86_64-unknown-linux-gnu syscall '^syscall'
check x86_64-unknown-linux-gnu page '^callq[[:space:]]+\*%'
build i686-unknown-linux-gnu debian_cargo
check i686-unknown-linux-gnu page '^calll[[:space:]]+\*\(%eax\)'
build aarch64-unknown-linux-gnu debian_cargo
check aarch64-unknown-linux-gnu hvc '^hvc[[:space:]]+#(0xea1|3745)'
build armv7-unknown-linux-gnueabihf debian_cargo
check armv7-unknown-linux-gnueabihf hvc '^hvc[[:space:]]+#(0xea1|3745)'
exit $fail
