#!/usr/bin/env bash
# Virtio on real Xen (x86, QEMU; VIRTIO_RELEASES, default 4.17 and 4.20, each with its Debian
# dom0 kernel and tools): Debian's Linux (6.1) as a PVH guest (no QEMU device model)
# finds a virtio-rng PCI function served from dom0 by xen's virtio_rng example (`--pvh`: the
# 0xCF8 read-back and a host bridge at 00:00.0, guest booted with pci=noacpi), loads Debian's
# own virtio modules, and reads /dev/hwrng. Checks, one structured line each (VIRTIO CHECK name:
# ok|FAIL ...): the bus is found, the device enumerates as 1af4:1044, virtio_pci binds it, the
# rng is registered, reads return data of the asked size (twice, all different), interrupts
# arrive (MSI-X through XEN_DMOP_inject_msi into the PVH guest); then the server is stopped
# with SIGTERM and tears down cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
ensure_debian_kernel

RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --profile server -p xen \
  --features virtio --example virtio_rng --target x86_64-unknown-linux-gnu --target-dir "$out/static"
server="$out/static/x86_64-unknown-linux-gnu/server/examples/virtio_rng"

# The guest: Debian's kernel and its own virtio modules, a busybox init that checks the device.
build_virtio_domu() { # dir
  local dir=$1 root m
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  for a in sh mount insmod cat echo ls dd od wc sort uniq head poweroff sleep grep tr; do
    ln -s busybox "$root/bin/$a"
  done
  for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/char/hw_random/virtio-rng; do
    [ -f "$KMODS/$m.ko" ] || { echo "FAIL: no $m.ko in Debian's kernel $KVER"; exit 1; }
    cp "$KMODS/$m.ko" "$root/lib/modules/"
  done
  # Load order from each module's own depends= (busybox insmod resolves nothing).
  local left order="" d ok
  left=$(cd "$root/lib/modules" && ls | sed 's/\.ko$//')
  while [ -n "$left" ]; do
    local next=""
    for m in $left; do
      ok=1
      for d in $(strings "$root/lib/modules/$m.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        case " $order " in *" $d "*) ;; *) ok=0 ;; esac
      done
      if [ $ok = 1 ]; then order="$order $m"; else next="$next $m"; fi
    done
    [ "$next" != "$left" ] || { echo "FAIL: module dependencies outside the set:$left"; exit 1; }
    left=$next
  done
  echo "$order" >"$root/lib/modules/order"
  cat >"$root/init" <<'DOMU'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
check() { # name ok-condition-result detail
  if [ "$2" = 0 ]; then echo "VIRTIO CHECK $1: ok ($3)"; else echo "VIRTIO CHECK $1: FAIL ($3)"; fi
}
d=/sys/bus/pci/devices/0000:00:03.0
[ -d $d ]; check "the PCI bus is found and 00:03.0 enumerates" $? "$(ls /sys/bus/pci/devices | tr '\n' ' ')"
id="$(cat $d/vendor 2>/dev/null):$(cat $d/device 2>/dev/null)"
[ "$id" = 0x1af4:0x1044 ]; check "00:03.0 is a modern virtio-rng" $? "$id"
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "VIRTIO CHECK insmod $m: FAIL"
done
[ -e $d/driver ] && [ "$(basename "$(readlink $d/driver)")" = virtio-pci ]
check "virtio_pci binds the function" $? "$(readlink $d/driver)"
cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
case "$cur" in virtio_rng*) r=0 ;; *) r=1 ;; esac
check "the kernel's rng is the virtio device" $r "rng_current=$cur"
a=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
b=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ ${#a} = 128 ] && [ ${#b} = 128 ]; check "two 64-byte reads of /dev/hwrng" $? "${#a} and ${#b} hex digits"
[ "$a" != "$b" ]; check "the two reads differ" $? "$(echo "$a" | head -c 16)... vs $(echo "$b" | head -c 16)..."
n=$(dd if=/dev/hwrng bs=4096 count=4 2>/dev/null | wc -c)
[ "$n" = 16384 ]; check "16 KiB from /dev/hwrng" $? "$n bytes"
irqs=$(grep -i virtio /proc/interrupts | tr -s ' ' | tr '\n' ';')
q=$(grep 'virtio0-input' /proc/interrupts | tr -s ' ')
# " N: COUNT PCI-MSI ... virtio0-input": the queue's own MSI-X vector fired.
n=$(echo "$q" | cut -d' ' -f3)
case "$q" in *PCI-MSI*) [ "${n:-0}" -gt 0 ] ;; *) false ;; esac
check "the queue interrupts by MSI-X (XEN_DMOP_inject_msi)" $? "$irqs"
echo "VIRTIO DONE"
poweroff -f
DOMU
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet) >"$dir/vlinux.cpio"
  rm -rf "$root"
  cp "$VMLINUZ" "$dir/vlinux-vmlinuz"
  cat >"$dir/etc/xen/vlinux.cfg" <<'CFG'
name = "vlinux"
type = "pvh"
kernel = "/vlinux-vmlinuz"
ramdisk = "/vlinux.cpio"
cmdline = "console=hvc0 quiet rdinit=/init pci=noacpi"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

for rel in ${VIRTIO_RELEASES:-4.17 4.20}; do
  release_dom0 "$rel"
  ir="$out/virtio-initramfs-$rel"
  dom0_initramfs "$rel" "$ir"
  cp "$server" "$ir/virtio_rng"
  build_virtio_domu "$ir"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
xl create -p /etc/xen/vlinux.cfg
domid=$(xl domid vlinux)
echo "== guest domain $domid"
# The guest's RAM: 128 MiB from 0 (PVH); pages Xen did not populate are reported, not mapped.
serve /tmp/v.log /virtio_rng --pvh "$domid" 3 0-7ffffff
wait_for "virtio_rng: serving" /tmp/v.log
xl unpause vlinux
gone vlinux 300
stop virtio_rng $p VIRTIO
drain /tmp/v.log
tr -d '\r' </var/log/xen/guest-vlinux.log | grep -E '^VIRTIO |virtio|PCI' || echo "== no output from the guest"
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$out/virtio-initramfs-$rel.cpio"
  log="$out/virtio-pvh-$rel.log"
  boot_dom0 "$out/virtio-initramfs-$rel.cpio" plain
  FAIL_TAIL=80
  grep -E '^VIRTIO |^virtio_rng:' <<<"$L" || true
  boot_verdict
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  grep -q '^VIRTIO CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in the guest"
  grep -q '^VIRTIO DONE' <<<"$L" || fail "the guest did not finish its checks"
  grep -q '== VIRTIO EXIT 0' <<<"$L" || fail "virtio_rng did not exit cleanly on SIGTERM"
  grep -q '^virtio_rng: stopped after [0-9]* requests' <<<"$L" || fail "virtio_rng did not report its teardown"
  n=$(grep -c '^VIRTIO CHECK .*: ok' <<<"$L")
  [ "$n" -ge 8 ] || fail "only $n virtio checks ran"
  echo "ok   virtio-pci on real Xen $rel (Linux $kver dom0, Xen $rel's xl): Debian's Linux $KVER as a PVH guest (no QEMU) drives virtio-rng from dom0 with its own modules: $n checks passed; $(grep -m1 -o 'stopped after [0-9]* requests ([0-9]* refused)' <<<"$L"); $ms ms of QEMU"
done
