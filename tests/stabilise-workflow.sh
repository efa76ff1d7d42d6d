#!/usr/bin/env bash
# The "stabilising a new hypercall" workflow of abi-spec/README.md, run end to end on a temporary
# copy of the repository: prototype the argument type with #[xen_abi], move it into the spec with
# `since` (4.21: after every packaged release, as an item being stabilised for the next one is),
# generate, run the C probe with the new header (standing in for the Xen tree that adds it) on
# top of the machine's release headers, and diff against the unchanged spec: only additions, no
# break. The new spec file is the only edit: the generator's own tests, the C probe's among
# them, pass with it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
root=$PWD
fail() { echo "FAIL: $*" >&2; exit 1; }
cargo build --locked -q -p xen-abi-gen
targets="${CARGO_TARGET_DIR:-$root/target}"
GEN="$targets/debug/xen-abi-gen"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$tmp"
export CARGO_TARGET_DIR="$targets/workflow"

echo "== 1. prototype with #[xen_abi]"
mkdir -p "$tmp/proto/src"
cat >"$tmp/proto/Cargo.toml" <<TOML
[package]
name = "proto"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
xen-abi-macros = { path = "$tmp/xen-abi-macros" }
xen-sys = { path = "$tmp/xen-sys" }
zerocopy = { version = "0.8", features = ["derive"] }
[workspace]
TOML
cp Cargo.lock "$tmp/proto/"
cat >"$tmp/proto/src/lib.rs" <<'RS'
/// The argument of the new TRIALOP_query, prototyped before it is in the spec.
#[xen_abi_macros::xen_abi(since = "4.21", c_name = "struct xen_trial_query", size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8))]
#[repr(C)]
pub struct XenTrialQuery {
    pub domid: u16,
    pub pad: u16,
    pub port: u32,
}
RS
(cd "$tmp/proto" && cargo check -q) || fail "the prototype does not compile"
echo "ok   the prototype passes #[xen_abi]"

echo "== 2. move it into the spec, with since"
cat >"$tmp/abi-spec/trial.toml" <<'TOML'
[spec]
format = 1
xen = "4.21"
interface_version = 0x00040e00
header = "xen/trial.h"
doc = "A new hypercall being stabilised (workflow test)."

[[struct]]
name = "xen_trial_query"
doc = "Argument of TRIALOP_query."
since = "4.21"
size = 8
fields = [
  { name = "domid", type = "domid_t", doc = "IN: the domain asked about." },
  { name = "pad", type = "u16", doc = "Must be 0." },
  { name = "port", type = "evtchn_port_t", doc = "OUT: a port." },
]

[[hypercall]]
name = "trial_op"
number = 56
doc = "The new hypercall."
since = "4.21"
args = [ { name = "cmd", type = "i32" }, { name = "arg", type = "ptr" } ]
subop_arg = "cmd"

[[hypercall.subop]]
name = "TRIALOP_query"
value = 1
arg = "xen_trial_query"
dir = "inout"
doc = "Ask."
TOML

echo "== 3. generate"
out=$("$GEN" generate --spec "$tmp/abi-spec" --out "$tmp/xen-sys/src/generated")
echo "$out" | grep -E '^trial |^total'
grep -q '^trial ' <<<"$out" || fail "the summary does not list the new module"
[ -f "$tmp/xen-sys/src/generated/trial.rs" ] || fail "no generated module"
(cd "$tmp" && cargo check -q -p xen-sys) || fail "the generated code does not compile"
"$GEN" check --spec "$tmp/abi-spec" --out "$tmp/xen-sys/src/generated" >/dev/null || fail "check after generate"
echo "ok   generated and compiled"
# The new file needs no edit anywhere else: the generator embeds every file of abi-spec/, and
# all its own tests pass with it: the embedded spec equals the files on disk, and the C probe of
# this machine's headers (as their release, which lacks the new 4.21 items) still holds.
(cd "$tmp" && cargo test --locked -q -p xen-abi-gen 2>&1) >"$tmp/gen-tests.txt" ||
  { tail -n 40 "$tmp/gen-tests.txt"; fail "xen-abi-gen's tests fail with a new spec file"; }
grep -q '^test result: ok. [1-9]' "$tmp/gen-tests.txt" || fail "xen-abi-gen's tests did not run"
(cd "$tmp" && cargo test --locked -q -p xen-abi-gen --test c_probe 2>&1) | grep -q '^test result: ok. [1-9]' ||
  fail "xen-abi-gen's C probe tests do not pass with the new file"
echo "ok   xen-abi-gen's tests (the C probe's too) pass with the new file in abi-spec/ (nothing else edited)"

echo "== 4. C probe: the new header on top of the machine's release headers"
release=$(machine_xen_release)
new="$tmp/new-headers"
mkdir -p "$new"
cat >"$new/trial.h" <<'H'
#ifndef XEN_TRIAL_H
#define XEN_TRIAL_H
#include "xen.h"
#include "event_channel.h"
#define __HYPERVISOR_trial_op 56
#define TRIALOP_query 1
struct xen_trial_query {
    domid_t domid;
    uint16_t pad;
    evtchn_port_t port;
};
#endif
H
probe=$("$GEN" c-probe --release "$release" --new-headers "$new" --spec "$tmp/abi-spec") || { echo "$probe"; fail "the C probe failed"; }
echo "$probe" | sed 's/^/     /'
[ "$(grep -c '^ok ' <<<"$probe")" = 8 ] || fail "the C probe did not pass on four architectures and both views"
grep -qxF "new items (dated after Xen $release) checked against them: trial_op, xen_trial_query (2)" <<<"$probe" ||
  fail "the probe does not say it checked the new items against the new header"
# The same probe must fail when the new header disagrees with the spec: it really is measured.
sed -i 's/uint16_t pad;/uint32_t pad;/' "$new/trial.h"
if bad=$("$GEN" c-probe --release "$release" --new-headers "$new" --spec "$tmp/abi-spec" --arch x86_64 --view guest); then
  echo "$bad"; fail "a new header that disagrees with the spec passed the probe"
fi
grep -qF 'xen_trial_query.port: offset expected 4 (spec), actual 8' <<<"$bad" || { echo "$bad"; fail "the mismatch is not named"; }
echo "ok   the C probe measures the new items against the new header (and fails when it disagrees)"
# Without the new header the release's headers must lack the new items, and do.
"$GEN" c-probe --release "$release" --spec "$tmp/abi-spec" --arch x86_64 >/dev/null || fail "the release's own headers do not pass"
echo "ok   the release's own headers lack the 4.21 items"

echo "== 5. diff against the unchanged spec"
d=$("$GEN" diff "$root/abi-spec" "$tmp/abi-spec") || { echo "$d"; fail "diff reports a break"; }
echo "$d" | sed 's/^/     /'
grep -q '^added: 1$' <<<"$d" || fail "diff should report exactly one added item (the new hypercall)"
grep -qF '+ hypercall `trial_op` (since 4.21), with its new argument struct `xen_trial_query`' <<<"$d" \
  || fail "the hypercall (with its argument struct) is not listed"
grep -q '^breaking changes: 0$' <<<"$d" || fail "diff reports a break"
echo "ok   workflow: prototype, spec, generate, C probe, diff all as documented"
