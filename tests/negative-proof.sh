#!/usr/bin/env bash
# Negative proof: change one field type in one struct so that only x86_32's layout breaks
# (xen_dm_op_buf.size: xen_ulong_t, 4 bytes on x86_32, becomes u64), and show that
#   (a) the generator reports it (declared size; and `check` names the stale module),
#   (b) the C probe fails on x86_32 and only there,
#   (c) the Rust cross check fails on i686 and only there.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
ensure_debian_rust >/dev/null

fail() { echo "FAIL: $*" >&2; exit 1; }
has() { grep -qF -- "$2" <<<"$1" || fail "$3: expected to see: $2"$'\n'"--- output:"$'\n'"$1"; }
lacks() { ! grep -qF -- "$2" <<<"$1" || fail "$3: did not expect: $2"$'\n'"--- output:"$'\n'"$1"; }

cargo build --locked -q -p xen-abi-gen
# Where cargo put it (CARGO_TARGET_DIR is honoured, as everywhere in the suite).
targets="${CARGO_TARGET_DIR:-$PWD/target}"
GEN="$targets/debug/xen-abi-gen"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

old='{ name = "size", type = "xen_ulong_t", doc = "Length of the buffer in bytes." }'
new='{ name = "size", type = "u64", doc = "Length of the buffer in bytes." }'
cp -r abi-spec "$tmp/spec"
sed -i "s/$old/$new/" "$tmp/spec/hvm/dm_op.toml"
grep -qF "$new" "$tmp/spec/hvm/dm_op.toml" || fail "the mutation did not apply"
echo "mutation: xen_dm_op_buf.size: xen_ulong_t -> u64"

# (a) the generator: the declared size no longer matches, on x86_32 only.
out=$("$GEN" layout xen_dm_op_buf --spec "$tmp/spec" 2>&1) && fail "(a) layout accepted the mutated spec"
has "$out" 'struct `xen_dm_op_buf` is declared 8 bytes on x86_32 but lays out as 12 bytes' "(a)"
has "$out" "1 error in the spec" "(a)"
echo "ok (a) generator: $(grep -F 'declared 8 bytes' <<<"$out" | sed 's/^.*error: //')"

# Without the declared sizes the spec is accepted; `check` then names the stale module.
cp -r "$tmp/spec" "$tmp/spec2"
sed -i '/^name = "xen_dm_op_buf"$/,/^fields/{/^size = \|^align = /d}' "$tmp/spec2/hvm/dm_op.toml"
out=$("$GEN" layout xen_dm_op_buf --arch x86_32 --spec "$tmp/spec2" 2>&1) || fail "(a) layout: $out"
has "$out" "xen_dm_op_buf on x86_32: size 12, align 4" "(a)"
out=$("$GEN" check --spec "$tmp/spec2" 2>&1) && fail "(a) check passed on a changed spec"
has "$out" "xen-sys/src/generated/hvm_dm_op.rs differs from the spec" "(a)"
lacks "$out" "event_channel.rs" "(a) only the changed module is stale"
echo "ok (a) check: $(grep -F 'hvm_dm_op.rs' <<<"$out" | sed 's/^ *//')"

# (b) the C probe against the real headers: x86_32 fails (both views), nothing else.
out=$("$GEN" c-probe --release "$(machine_xen_release)" --spec "$tmp/spec2" 2>&1) && fail "(b) the C probe passed"
has "$out" "x86_32: xen_dm_op_buf: size expected 12 (spec), actual 8" "(b)"
for a in x86_64 arm32 arm64; do
  lacks "$out" "FAIL $a" "(b) only x86_32 may fail"
  has "$out" "ok   $a" "(b)"
done
[ "$(grep -c '^FAIL x86_32' <<<"$out")" = 2 ] || fail "(b) expected x86_32 to fail in both views"$'\n'"$out"
echo "ok (b) C probe fails on x86_32 only:"
grep -E '^(FAIL|  x86_32)' <<<"$out" | sed 's/^/     /'

# (c) Rust: the same type change applied to the binding, whose assertions carry the real ABI.
mkdir "$tmp/ws"
tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$tmp/ws"
f="$tmp/ws/xen-sys/src/generated/hvm_dm_op.rs"
sed -i '/^pub struct XenDmOpBuf {/,/^}/s/pub size: XenUlong,/pub size: u64,/' "$f"
grep -A6 '^pub struct XenDmOpBuf {' "$f" | grep -q 'pub size: u64,' || fail "(c) the Rust mutation did not apply"
export CARGO_TARGET_DIR="$targets/debian-cross"
for t in x86_64-unknown-linux-gnu i686-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  if out=$(cd "$tmp/ws" && debian_cargo check --locked -q -p xen-sys --target "$t" 2>&1); then
    [ "$t" = i686-unknown-linux-gnu ] && fail "(c) cargo check passed on i686"
    echo "ok (c) $t still type-checks"
  else
    [ "$t" = i686-unknown-linux-gnu ] || fail "(c) cargo check failed on $t:"$'\n'"$out"
    has "$out" "size_of::<XenDmOpBuf>() == 8" "(c)"
    echo "ok (c) $t fails: $(grep -m1 -E 'error' <<<"$out")"
    grep -m1 -F "size_of::<XenDmOpBuf>() == 8" <<<"$out" | sed 's/^/     /'
  fi
done
echo "negative proof: passed"
