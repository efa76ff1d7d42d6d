#!/usr/bin/env bash
# The four crates as crates.io would get them. `cargo package --workspace` packs each one (the
# spec files xen-abi-gen embeds come in through its `abi-spec` link, which cargo follows) and
# verifies it: the .crate alone is built with its default features, its sibling dependencies
# taken from their freshly packed .crates (cargo's local overlay registry). Then every .crate is
# unpacked into a scratch workspace outside the repository, all four coming from the packages
# ([patch.crates-io]), and built with the feature sets that matter; the packaged xen-abi-gen
# finds the packaged xen-sys's generated code equal to what the packaged spec generates, and a
# downstream crate uses all four (#[xen_abi], include_spec! against the embedded spec, xen with
# std). No file of the repository may be read by those builds (rustc's dep-info and the build
# scripts' outputs are checked).
#
# One line per crate: PACKAGE crate=NAME verdict=pass|fail files=N builds=...; a failure prints
# the log of the step that failed and `FAIL: ...`, and the script exits non-zero.
# Needs cargo 1.90 or newer (multi-package `cargo package`). Honours CARGO_TARGET_DIR (cargo's
# own verification builds in $CARGO_TARGET_DIR/package, the scratch builds in
# $CARGO_TARGET_DIR/package-crates, so the dependencies stay built between runs) and
# CARGO_BUILD_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
targets="${CARGO_TARGET_DIR:-$root/target}"
CRATES="xen-abi-gen xen-abi-macros xen-sys xen"
fail() { echo "FAIL: $*" >&2; exit 1; }

read -r cargo_minor < <(cargo -V | sed -E 's/^cargo 1\.([0-9]+).*/\1/')
[[ $cargo_minor =~ ^[0-9]+$ ]] && [ "$cargo_minor" -ge 90 ] ||
  fail "$(cargo -V) cannot package interdependent crates of a workspace (cargo package --workspace needs cargo 1.90 or newer)"

tmp=$(mktemp -d)
cleanup() {
  # The scratch packages' artifacts (their paths change every run) go; the dependencies stay.
  if [ -f "$tmp/ws/Cargo.toml" ]; then
    (cd "$tmp/ws" && CARGO_TARGET_DIR="$targets/package-crates" cargo clean -q --offline \
      -p xen-abi-gen -p xen-abi-macros -p xen-sys -p xen -p downstream) >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
log="$tmp/log"
# run COMMAND...: the command's output goes to the log, shown only when it fails.
run() {
  if ! "$@" >"$log" 2>&1; then
    tail -60 "$log"
    return 1
  fi
}

# Everything the lock file names for this machine, so the scratch builds can run --offline (a
# no-op when the earlier stages have built the workspace).
host=$(rustc -vV | sed -n 's/^host: //p')
run cargo fetch --locked --target "$host" || fail "cargo fetch --locked: the dependencies could not be downloaded"

run cargo package --workspace --locked --offline --allow-dirty ||
  fail "cargo package --workspace: a crate does not package or does not build from its .crate (log above)"
echo "ok   cargo package --workspace: $(grep -c '^ *Verifying' "$log") crates packed, each built from its .crate with its default features"

# The .crate of each member, by its version.
declare -A VERSION CRATE FILES
for c in $CRATES; do
  id=$(cargo pkgid --offline -p "$c")
  VERSION[$c]=${id##*[#@]}
  CRATE[$c]="$targets/package/$c-${VERSION[$c]}.crate"
  [ -f "${CRATE[$c]}" ] || fail "cargo package wrote no ${CRATE[$c]}"
  FILES[$c]=$(tar -tzf "${CRATE[$c]}" | grep -vc '/$')
done

# The spec in xen-abi-gen's package: every file of abi-spec/, the same bytes, as files.
mkdir -p "$tmp/ws"
for c in $CRATES; do tar -xzf "${CRATE[$c]}" -C "$tmp/ws"; done
gen_dir=$(basename "${CRATE[xen-abi-gen]}" .crate)
if tar -tvzf "${CRATE[xen-abi-gen]}" | grep -q '^l'; then
  fail "xen-abi-gen's package holds a symbolic link instead of the spec files"
fi
diff -r abi-spec "$tmp/ws/$gen_dir/abi-spec" >"$log" 2>&1 || {
  cat "$log"; fail "xen-abi-gen's package does not carry abi-spec/ as it is in the repository"
}
spec_files=$(find abi-spec -name '*.toml' | wc -l)

# The scratch workspace: the four unpacked crates, each other's dependencies through
# [patch.crates-io] (their manifests ask crates.io for them, as a published crate does), the
# repository's lock file for the versions of everything else, and a downstream crate.
members="" patches=""
for c in $CRATES; do
  d=$(basename "${CRATE[$c]}" .crate)
  members+="\"$d\", "
  patches+="$c = { path = \"$d\" }"$'\n'
done
cat >"$tmp/ws/Cargo.toml" <<TOML
[workspace]
resolver = "2"
members = [${members}"downstream"]

[patch.crates-io]
$patches
TOML
cp Cargo.lock "$tmp/ws/"
mkdir -p "$tmp/ws/downstream/src"
cat >"$tmp/ws/downstream/Cargo.toml" <<TOML
[package]
name = "downstream"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
xen = { version = "${VERSION[xen]}", features = ["std"] }
xen-abi-macros = "${VERSION[xen-abi-macros]}"
xen-sys = "${VERSION[xen-sys]}"
zerocopy = { version = "0.8", features = ["derive"] }
TOML
cat >"$tmp/ws/downstream/extra.toml" <<'TOML'
[spec]
format = 1
xen = "4.17"
interface_version = 0x00040e00
header = "xen/downstream.h"
doc = "A downstream crate's own interface, using the in-tree spec's types."

[[struct]]
name = "xen_downstream_query"
doc = "A query."
since = "4.17"
size = 8
fields = [
  { name = "domid", type = "domid_t", doc = "IN: the domain." },
  { name = "pad", type = "u16", doc = "Must be 0." },
  { name = "port", type = "evtchn_port_t", doc = "OUT: a port." },
]
TOML
cat >"$tmp/ws/downstream/src/main.rs" <<'RS'
//! A project outside the repository, with the four crates from their packages.
use xen_sys::XenAbi;

mod extra {
    xen_abi_macros::include_spec!("extra.toml");
}

/// A prototype, checked by #[xen_abi].
#[xen_abi_macros::xen_abi(since = "4.17", size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8))]
#[repr(C)]
pub struct Proto {
    pub domid: u16,
    pub pad: u16,
    pub port: u32,
}

fn main() {
    let q = extra::XenDownstreamQuery { domid: 1, pad: 0, port: 2 };
    assert_eq!(core::mem::size_of_val(&q), 8);
    let dom = xen::DomId(q.domid);
    println!(
        "{} {} {dom:?} {}",
        <extra::XenDownstreamQuery as XenAbi>::C_NAME,
        <Proto as XenAbi>::C_NAME,
        xen_sys::__HYPERVISOR_event_channel_op
    );
}
RS

export CARGO_TARGET_DIR="$targets/package-crates"
stamp="$tmp/stamp"
touch "$stamp"
declare -A BUILDS FAILED VERDICT
for c in $CRATES downstream; do BUILDS[$c]=""; FAILED[$c]=""; VERDICT[$c]=pass; done
# build CRATE LABEL CARGO-ARGS...: one build in the scratch workspace, recorded for CRATE.
build() {
  local c=$1 label=$2; shift 2
  if (cd "$tmp/ws" && run cargo "$@" --offline); then
    BUILDS[$c]+="${BUILDS[$c]:+,}$label"
  else
    echo "FAIL: $c ($label): cargo $* in the scratch workspace failed (log above)"
    VERDICT[$c]=fail
    FAILED[$c]+="${FAILED[$c]:+,}$label"
  fi
}
build xen-abi-gen cli build -p xen-abi-gen
build xen-abi-macros default build -p xen-abi-macros
build xen-sys no_std build -p xen-sys
build xen-sys privcmd build -p xen-sys --features privcmd
build xen no_std build -p xen
build xen std build -p xen --features std
build xen all-features build -p xen --all-features
build downstream default build -p downstream

# The packaged generator on the packaged spec: the packaged xen-sys's code is what it generates.
gen="$CARGO_TARGET_DIR/debug/xen-abi-gen"
sys_dir=$(basename "${CRATE[xen-sys]}" .crate)
if [ "${VERDICT[xen-abi-gen]}" = pass ]; then
  if (cd "$tmp/ws" && run "$gen" --spec "$gen_dir/abi-spec" --out "$sys_dir/src/generated" check); then
    BUILDS[xen-abi-gen]+=",check"
  else
    echo "FAIL: xen-abi-gen check: the packaged xen-sys's generated code differs from what the packaged spec generates"
    VERDICT[xen-abi-gen]=fail
    FAILED[xen-abi-gen]+="${FAILED[xen-abi-gen]:+,}check"
  fi
fi
if [ "${VERDICT[downstream]}" = pass ]; then
  out=$("$CARGO_TARGET_DIR/debug/downstream" 2>&1) || true
  if [ "$out" = "struct xen_downstream_query struct Proto DomId(1) 32" ]; then
    BUILDS[downstream]+=",run"
  else
    echo "$out"
    echo "FAIL: downstream did not print what its types and constants are (above)"
    VERDICT[downstream]=fail
    FAILED[downstream]+="${FAILED[downstream]:+,}run"
  fi
fi

# Nothing of the repository was read: every file rustc read (dep-info) and every path a build
# script watches lies in the scratch workspace, the target directory or outside the repository.
# The file that names one tells whose build it was (deps/xen_sys-HASH.d,
# build/xen-abi-gen-HASH/output).
while IFS= read -r -d '' f; do
  leaks=$(tr ' =' '\n\n' <"$f" | sed 's/:$//' | grep -F "$root/" | grep -vF "$targets/" | sort -u || true)
  [ -n "$leaks" ] || continue
  case $f in
    */build/*) who=${f#"$CARGO_TARGET_DIR/debug/build/"}; who=${who%%/*} ;;
    *) who=${f##*/}; who=${who%.d} ;;
  esac
  who=${who%-*}; who=${who//_/-}
  echo "$leaks" | sed "s|^|     |"
  echo "FAIL: the build of $who read files of the repository (above; from $f)"
  # Another package's build (a dependency): it cannot be told which crate is to blame.
  whom=$who
  [ -n "${VERDICT[$who]:-}" ] || whom="${!VERDICT[*]}"
  for c in $whom; do
    VERDICT[$c]=fail
    [[ ${FAILED[$c]} == *reads-repository* ]] || FAILED[$c]+="${FAILED[$c]:+,}reads-repository"
  done
done < <(find "$CARGO_TARGET_DIR/debug" -newer "$stamp" -type f \( -path '*/deps/*.d' -o -path '*/build/*' \
  \( -name '*.d' -o -name output \) \) -print0)

status=0
for c in $CRATES; do
  extra=""
  [ "$c" = xen-abi-gen ] && extra=" spec=$spec_files"
  echo "PACKAGE crate=$c verdict=${VERDICT[$c]} files=${FILES[$c]}$extra builds=${BUILDS[$c]:-none}${FAILED[$c]:+ failed=${FAILED[$c]}}"
  [ "${VERDICT[$c]}" = pass ] || status=1
done
echo "PACKAGE crate=downstream verdict=${VERDICT[downstream]} uses=xen-abi-macros,xen-sys,xen builds=${BUILDS[downstream]:-none}${FAILED[downstream]:+ failed=${FAILED[downstream]}}"
[ "${VERDICT[downstream]}" = pass ] || status=1
if [ $status != 0 ]; then
  fail "a crate does not build from its packaged .crate alone (PACKAGE lines above)"
fi
echo "ok   the four crates package, and build from their .crate files alone in a scratch workspace outside the repository"
