#!/usr/bin/env bash
# Real Xen, x86_64, Linux dom0: one static build of the privcmd_check example (xen-sys's privcmd backend, xen's evtchn device) runs in a
# Linux PV dom0 on each Xen release with that release's Debian kernel (Xen 4.14 + Linux 5.10,
# 4.17 + 6.1, 4.20 + 6.12; LINUX_DOM0_RELEASES overrides the list), from a busybox initramfs
# made here whose /init loads xen-privcmd and xen-evtchn: generic hypercalls with
# /dev/xen/hypercall buffers, the evtchn device, IOCTL_PRIVCMD_DM_OP errors, an MMAP_RESOURCE size
# query, RESTRICT, and the ioctls newer than some kernels, which must be refused (typed) exactly
# where the booted kernel predates them or lacks the option they need. One line per check. Then
# the program on a deliberately broken backend must fail (on the machine's release). The regbank
# IOREQ server (the same static binary the IOREQ scenario runs) is started once per release for a
# domain that does not exist: where Xen predates an interface it needs it must refuse at once
# with the typed version error naming the operation and release (4.14: XEN_DMOP_nr_vcpus needs
# 4.15), elsewhere it must get as far as Xen's ESRCH for the missing domain; both exit cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_LINUX_DOM0

. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"

# The test program, static so the initramfs needs no libraries.
build_prog() { # extra-rustflags target-dir
  RUSTFLAGS="-C target-feature=+crt-static $1" cargo build --locked -q --release -p xen \
    --example privcmd_check --features std --target x86_64-unknown-linux-gnu --target-dir "$2" \
    || return 1
  echo "$2/x86_64-unknown-linux-gnu/release/examples/privcmd_check"
}

# The IOREQ server, built as tests/real-xen/ioreq-pvh.sh builds it (same flags and directory).
build_regbank() {
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --profile server -p xen \
    --features std --example regbank --target x86_64-unknown-linux-gnu --target-dir "$out/static" \
    || return 1
  echo "$out/static/x86_64-unknown-linux-gnu/server/examples/regbank"
}

# initramfs: busybox, the two modules, the program, /init.
make_initramfs() { # program cpio
local prog=$1
ir="$out/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,lib/modules}
cp /bin/busybox "$ir/bin/busybox"
for a in sh mount insmod reboot echo timeout; do ln -s busybox "$ir/bin/$a"; done
add_module xen-privcmd "$ir/lib/modules"
add_module xen-evtchn "$ir/lib/modules"
cp "$prog" "$ir/privcmd_check"
[ -n "${regbank:-}" ] && cp "$regbank" "$ir/regbank"
cat >"$ir/init" <<'INIT'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
insmod /lib/modules/xen-privcmd.ko
insmod /lib/modules/xen-evtchn.ko
echo "== privcmd_check starts"
/privcmd_check
echo "== privcmd_check exit status $?"
if [ -x /regbank ]; then
  timeout 20 /regbank 1 2>&1
  echo "== regbank exit status $?"
fi
reboot -f
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet) >"$2"
}

boot() { # cpio log -> QEMU's exit status
  local rc=0
  qemu_bounded "$2" qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m 1024 -smp 1 \
    -nographic -no-reboot -kernel "$xen" \
    -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=512M dom0_max_vcpus=1' \
    -initrd "$vmlinuz console=hvc0 earlyprintk=xen loglevel=4 rdinit=/init,$1" || rc=$?
  return $rc
}

# The kernel option an ioctl needs besides its release (empty: none).
ioctl_config() {
  case $1 in
    IOCTL_PRIVCMD_IRQFD | IOCTL_PRIVCMD_IOEVENTFD) echo CONFIG_XEN_PRIVCMD_EVENTFD ;;
  esac
}

# The verdict on the ioctls newer than some kernels ("GATE <ioctl> present|refused <release>"):
# present exactly where the booted kernel is at least that release and has the option the ioctl
# needs. Sets gated to a summary.
gates_verdict() {
  local kmm gates want cfg
  kmm=$(echo "$kver" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
  gates=$(tr -d '\r' <"$log" | grep '^GATE ' || true)
  [ "$(grep -c . <<<"$gates")" -ge 3 ] || fail "fewer than 3 GATE lines"
  while read -r _ op verdict since; do
    want=present
    release_at_least "$kmm" "$since" || want=refused
    cfg=$(ioctl_config "$op")
    if [ "$want" = present ] && [ -n "$cfg" ] && ! grep -q "^$cfg=y" "$kconfig"; then
      want=refused
    fi
    [ "$verdict" = "$want" ] || fail "$op: $verdict on Linux $kver, want $want (Linux $since${cfg:+, $cfg})"
  done <<<"$gates"
  gated=$(awk '{ printf "%s%s %s", sep, $2, $3; sep = ", " }' <<<"$gates")
}

# regbank for a domain that does not exist: the typed refusal where Xen predates
# XEN_DMOP_nr_vcpus (4.15), Xen's ESRCH from it elsewhere; a clean exit either way. Sets said.
regbank_verdict() { # release
  local st want
  st=$(tr -d '\r' <"$log" | sed -n 's/^== regbank exit status //p')
  said=$(tr -d '\r' <"$log" | grep -m1 '^regbank: ' || true)
  [ "$st" = 1 ] || fail "regbank exit status \"$st\" on Xen $1, want 1 (124: it hung)"
  if release_at_least "$1" 4.15; then
    want="regbank: XEN_DMOP_nr_vcpus: ESRCH (errno 3)"
  else
    want="regbank: XEN_DMOP_nr_vcpus needs Xen 4.15 or later; the running hypervisor is $1"
  fi
  [ "$said" = "$want" ] || fail "regbank on Xen $1 said \"$said\", want \"$want\""
}

prog=$(build_prog "" "$out/static") || { echo "FAIL: privcmd_check does not build"; exit 1; }
regbank=$(build_regbank) || { echo "FAIL: regbank does not build"; exit 1; }
echo "     privcmd_check $(sha256sum "$prog" | cut -c1-16), regbank $(sha256sum "$regbank" | cut -c1-16) (sha256): the same files on every release"
for rel in ${LINUX_DOM0_RELEASES:-$XEN_RELEASES}; do
  release_dom0 "$rel"
  make_initramfs "$prog" "$out/initramfs-$rel.cpio"
  log="$out/linux-dom0-$rel.log"
  start=$(date +%s%N)
  rc=0; boot "$out/initramfs-$rel.cpio" "$log" || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  checks_verdict "$rc" 18
  grep -q "Xen version $rel\." "$log" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' "$log"), want $rel"
  v=$(tr -d '\r' <"$log" | sed -n 's/^VERSION //p' | head -1)
  [ "$v" = "$rel" ] || fail "privcmd_check: XENVER_version says \"$v\" on Xen $rel"
  extraversion_of privcmd "$rel"
  gates_verdict
  regbank_verdict "$rel"
  echo "ok   Linux $kver PV dom0: $n privcmd/evtchn checks passed on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') in $ms ms of QEMU (kernel-gated: $gated)"
  echo "ok   regbank on Xen $rel: \"$said\", exit status 1, no hang"
done

# The same program on a backend with two argument registers swapped must fail.
release_dom0 "$(machine_xen_release)"
prog=$(build_prog "--cfg broken_backend" "$out/static-broken") || { echo "FAIL: the broken privcmd_check does not build"; exit 1; }
regbank=
make_initramfs "$prog" "$out/initramfs-broken.cpio"
log="$out/linux-dom0-broken.log"
rc=0; boot "$out/initramfs-broken.cpio" "$log" || rc=$?
broken_verdict "$rc" "Linux dom0 (privcmd)"
