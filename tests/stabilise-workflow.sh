#!/usr/bin/env bash
# The "stabilising a new hypercall" workflow of abi-spec/README.md, run end to end on a temporary
# copy of the repository: prototype the argument type with #[xen_abi], move it into the spec with
# `since`, generate, run the C probe against a header that declares it (standing in for the
# patched Xen tree), and diff against the unchanged spec: only additions, no break. The new
# spec file is the only edit: the generator's own tests pass with it.
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
#[xen_abi_macros::xen_abi(since = "4.17", c_name = "struct xen_trial_query", size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8))]
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
xen = "4.20"
interface_version = 0x00040e00
header = "xen/trial.h"
doc = "A new hypercall being stabilised (workflow test)."

[[struct]]
name = "xen_trial_query"
doc = "Argument of TRIALOP_query."
since = "4.17"
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
since = "4.17"
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
# its own tests (the embedded spec equals the files on disk among them) pass with it. All but
# c_probe, which compares the spec with this machine's installed headers: they do not have
# the new header (step 4 probes it on top of them).
tests=""
for t in "$tmp"/xen-abi-gen/tests/*.rs; do
  t=$(basename "$t" .rs)
  [ "$t" = c_probe ] || tests="$tests --test $t"
done
# shellcheck disable=SC2086
(cd "$tmp" && cargo test --locked -q -p xen-abi-gen --lib $tests 2>&1) >"$tmp/gen-tests.txt" ||
  { tail -n 40 "$tmp/gen-tests.txt"; fail "xen-abi-gen's tests fail with a new spec file"; }
grep -q '^test result: ok. [1-9]' "$tmp/gen-tests.txt" || fail "xen-abi-gen's tests did not run"
echo "ok   xen-abi-gen's tests pass with the new file in abi-spec/ (nothing else edited)"

echo "== 4. C probe against the (patched) headers"
inc="$tmp/include/xen"
mkdir -p "$inc"
# A copy, not links: the probe checks that every Xen header it reads is the release's own.
cp -r /usr/include/xen/. "$inc/"
cat >"$inc/trial.h" <<'H'
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
probe=$("$GEN" c-probe --release "$(machine_xen_release)" --xen-include "$inc" --spec "$tmp/abi-spec") || { echo "$probe"; fail "the C probe failed"; }
echo "$probe" | sed 's/^/     /'
echo "ok   the C probe passes on four architectures and both views"

echo "== 5. diff against the unchanged spec"
d=$("$GEN" diff "$root/abi-spec" "$tmp/abi-spec") || { echo "$d"; fail "diff reports a break"; }
echo "$d" | sed 's/^/     /'
grep -q '^added: 1$' <<<"$d" || fail "diff should report exactly one added item (the new hypercall)"
grep -qF '+ hypercall `trial_op` (since 4.17), with its new argument struct `xen_trial_query`' <<<"$d" \
  || fail "the hypercall (with its argument struct) is not listed"
grep -q '^breaking changes: 0$' <<<"$d" || fail "diff reports a break"
echo "ok   workflow: prototype, spec, generate, C probe, diff all as documented"
