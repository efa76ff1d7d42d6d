#!/usr/bin/env bash
# Real Xen, arm64: Debian's arm64 Xen 4.17 boots (under qemu-system-aarch64, virtualization=on)
# a no_std Rust dom0 built with Debian's rustc-web for aarch64; it runs the xen-sys checks through
# the HVC backend and ends QEMU through semihosting with its result. A build with a broken
# backend must fail. The same dom0 then boots on Xen built from Debian's 4.17 source with IOREQ
# servers (tests/lib/xen-arm64-ioreq.sh), which has the dm_op that Debian's build lacks: the
# dom0 reports dm_op's answer for a domain that does not exist, ENOSYS from Debian's build and
# ESRCH from ours.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-arm64-ioreq.sh
. tests/lib/xen-arm64-ioreq.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_ARM64_XEN_BUILD
ensure_debian_rust >/dev/null

out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"

ensure_xen_arm64_debian "$out"
xen=$XEN_ARM64_DEBIAN

M=(-machine virt,gic-version=3,virtualization=true -cpu cortex-a57 -m 1024 -smp 1 -nographic)

build() { # features target-dir -> path of the Image
  (cd tests/xen-arm64-dom0 && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    RUSTFLAGS="-C relocation-model=pie -C target-feature=+strict-align" \
    debian_cargo build --locked -q --release --target aarch64-unknown-linux-gnu --target-dir "$2" \
    ${1:+--features "$1"} 2> >(grep -v 'strict-align\|unstable feature\|filing a feature\|still passed through\|^ *|\|^ *= \|^$\|generated 1 warning' >&2)) || return 1
  local elf="$2/aarch64-unknown-linux-gnu/release/xen-arm64-dom0-test" img="$2/dom0.Image"
  aarch64-linux-gnu-objcopy -O binary "$elf" "$img"
  # The arm64 Image header's image_size (offset 16, little-endian): the file holds .bss too.
  local size le
  size=$(stat -c %s "$img")
  le=$(printf '%016x' "$size" | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\\x\8\\x\7\\x\6\\x\5\\x\4\\x\3\\x\2\\x\1/')
  printf "$le" | dd of="$img" bs=1 seek=16 conv=notrunc status=none
  echo "$img"
}

dtb() { # image -> dtb path: QEMU's own tree plus Xen's boot arguments and the dom0 module
  local d="$out/virt-xen.dtb" size
  size=$(stat -c %s "$1")
  timeout 30 qemu-system-aarch64 "${M[@]}" -machine dumpdtb="$d" </dev/null >/dev/null 2>&1
  fdtput -t i "$d" /chosen '#address-cells' 2
  fdtput -t i "$d" /chosen '#size-cells' 2
  fdtput -t s "$d" /chosen xen,xen-bootargs \
    "console=dtuart dtuart=/pl011@9000000 dom0_mem=128M loglvl=all guest_loglvl=all"
  fdtput -c "$d" /chosen/module@47000000
  fdtput -t s "$d" /chosen/module@47000000 compatible "multiboot,kernel" "multiboot,module"
  fdtput -t x "$d" /chosen/module@47000000 reg 0 0x47000000 0 "$(printf '%x' "$size")"
  fdtput -t s "$d" /chosen/module@47000000 bootargs ""
  echo "$d"
}

boot() { # image log -> QEMU's exit status (semihosting: the kernel's)
  local d rc=0
  d=$(dtb "$1")
  qemu_bounded "$2" qemu-system-aarch64 "${M[@]}" -no-reboot -semihosting -kernel "$xen" -dtb "$d" \
    -device loader,file="$1",addr=0x47000000 || rc=$?
  return $rc
}

# dom0_passes LOG DM_OP-ERROR WHAT: the dom0 image boots on $xen and passes its checks; its
# "DMOP hvc ..." line carries Err(XEN_<DM_OP-ERROR>) (WHAT: the hypervisor, for the message);
# sets n and ms.
dom0_passes() {
  local got
  log=$1
  start=$(date +%s%N)
  rc=0; boot "$img" "$log" || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  checks_verdict "$rc" 12
  [ "$rc" = 0 ] || fail "QEMU exit status $rc, want 0 (semihosting exit)"
  extraversion_of hvc
  got=$(tr -d '\r' <"$log" | sed -n 's/^DMOP hvc create_ioreq_server(domain 1): //p' | head -n1)
  [ "$got" = "Err(XEN_$2)" ] || fail "dm_op on $3 answered '${got:-nothing}', want Err(XEN_$2)"
}

img=$(build "" "$out/arm64-dom0")
dom0_passes "$out/arm64-dom0.log" ENOSYS "Debian's arm64 Xen (built without CONFIG_IOREQ_SERVER)"
echo "ok   arm64 dom0: $n checks passed through hvc #0xEA1 on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') in $ms ms of QEMU; dm_op: ENOSYS (no IOREQ servers in Debian's build)"

# The same dom0 on Xen with IOREQ servers, built from Debian's source.
ensure_xen_arm64_ioreq
debian_xen=$xen
xen=$XEN_ARM64_IOREQ
dom0_passes "$out/arm64-dom0-ioreq.log" ESRCH "Xen built from Debian's source with CONFIG_IOREQ_SERVER"
echo "ok   arm64 dom0 on Xen with IOREQ servers (Debian's xen $XEN_ARM64_SOURCE_VERSION source): $n checks passed on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') in $ms ms of QEMU; dm_op: ESRCH for a missing domain (dm_op is there)"
xen=$debian_xen

img=$(build broken-backend "$out/arm64-dom0-broken")
log="$out/arm64-dom0-broken.log"
rc=0; boot "$img" "$log" || rc=$?
[ "$rc" = 124 ] || [ "$rc" = 1 ] || fail "broken backend: QEMU exit status $rc, want 1"
broken_verdict "$rc" "arm64 dom0"
