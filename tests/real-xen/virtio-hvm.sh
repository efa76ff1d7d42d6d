#!/usr/bin/env bash
# Virtio on real Xen the other way in, next to QEMU (x86, QEMU, Xen 4.17: Debian 12's
# qemu-system-xen is built against 4.17's libraries): Debian's Linux (6.1) as an HVM guest with
# Debian's qemu-system-xen as its primary device model, unchanged command line but for
# xen_emul_unplug=never (below), and virtio_attach as a second IOREQ server for four PCI
# slots QEMU leaves free (the pattern of demu): 00:03.0 an in-process rng; 00:04.0 an rng,
# 00:05.0 a console and 00:06.0 a SCSI disk through vhost-device-rng, -console and -scsi
# (tests/lib/vhost-devices.sh). hvmloader sizes and places their BARs, SeaBIOS finds the SCSI
# disk and reads it, then Linux binds virtio_pci to them; interrupts are MSI-X through
# XEN_DMOP_inject_msi (Linux binds them to event channels: xen-pirq -msi-x). The guest and dom0
# run the same checks as the PVH scenario (tests/real-xen/virtio-pvh.sh: the rngs, a line each
# way over the console, the disk round trip that dom0 finds in its file, the back end and the
# front end killed and restarted mid-run).
#
# The benchmark, side by side in the same guest and the same boot: QEMU's own virtio-rng-pci
# (00:07.0) and virtio-scsi-pci with a scsi-hd on a file (00:08.0) against ours. The machine
# runs with -icount shift=0: its TSC counts the instructions every part of it executes (Xen,
# dom0's kernel, QEMU or virtio_attach and the back end, the guest), so TSC ticks per operation
# are instructions per operation: per rng request (a 64-byte read of /dev/hwrng) and per 4 KiB
# read (O_DIRECT, so each reaches the device). Printed as "VIRTIO BENCH" lines with the ratio
# ours / QEMU's (the goal: no more than 1).
# xen_emul_unplug=never: Linux with Xen's PV drivers asks the Xen platform device to unplug the
# emulated disks, and QEMU then removes every SCSI-class PCI device of its own (its
# virtio-scsi-pci included). Our devices are not QEMU's and need no such option.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_VIRTIO_HVM
# shellcheck source=tests/lib/virtio-scenario.sh
. tests/lib/virtio-scenario.sh
virtio_prepare

rel=4.17
release_dom0 "$rel"
dom0_initramfs "$rel" "$out/virtio-hvm-initramfs"
# QEMU as Xen's device model (libxl's default path), hvmloader and the firmware it loads, and
# the option ROM QEMU uses for a direct kernel boot.
copy_bin /usr/libexec/xen-qemu-system-i386
mkdir -p "$ir/usr/lib/xen-4.17/boot" "$ir/usr/share/seabios" "$ir/usr/share/qemu"
cp /usr/lib/xen-4.17/boot/hvmloader "$ir/usr/lib/xen-4.17/boot/"
cp /usr/share/seabios/bios-256k.bin "$ir/usr/share/seabios/"
cp -L /usr/share/qemu/linuxboot.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin "$ir/usr/share/qemu/"
cp -rL /usr/share/qemu/keymaps "$ir/usr/share/qemu/"
# QEMU's own devices for the benchmark: modern-only like ours, MSI-X like ours.
cfg='name = "vhvm"
type = "hvm"
device_model_version = "qemu-xen"
kernel = "/vhvm-vmlinuz"
ramdisk = "/vhvm.cpio"
cmdline = "console=ttyS0,115200 quiet rdinit=/init xen_emul_unplug=never"
memory = 256
vcpus = 1
serial = "file:/var/log/xen/guest-vhvm.log"
vga = "none"
nographic = 1
vnc = 0
sdl = 0
usb = 0
on_poweroff = "destroy"
on_crash = "destroy"
device_model_args_hvm = [ "-device", "virtio-rng-pci,addr=07.0,disable-legacy=on,vectors=2", "-drive", "file=/tmp/qdisk.img,if=none,id=qd,format=raw", "-device", "virtio-scsi-pci,id=qs,addr=08.0,disable-legacy=on", "-device", "scsi-hd,drive=qd,bus=qs.0" ]'
# The guest's RAM: 256 MiB from 0; hvmloader's holes and special pages are not populated,
# which virtio_attach reports and leaves out.
virtio_initramfs hvm vhvm "$cfg" 0-fffffff
log="$out/virtio-hvm-$rel.log"
QEMU_MEM=2048 boot_dom0 "$ir.cpio" icount
# The PVH scenario's 40 checks but its strace phase, QEMU's two devices (enumerate, modern,
# bound: 6), its rng (4) and disk (1), and the five benchmark runs.
virtio_verdict $((40 - 1 + 6 + 4 + 1 + 5))
# Instructions per operation (TSC ticks under -icount), ours against QEMU's.
per() { # what who: instructions per operation
  sed -n "s/^VIRTIO BENCH $1 $2 [^ ]* ops=\([0-9]*\) bytes=[0-9]* tsc=\([0-9]*\) .*/\2 \1/p" <<<"$L" | head -n1 |
    awk '$2 > 0 { printf "%d", $1 / $2 }'
}
declare -A per_op
for w in "rng in-process" "rng vhost-user" "rng qemu" "disk vhost-user" "disk qemu"; do
  # shellcheck disable=SC2086
  per_op[$w]=$(per $w)
  [ -n "${per_op[$w]}" ] || fail "no benchmark figure for the $w device"
done
figures=""
for what in rng disk; do
  q=${per_op[$what qemu]} v=${per_op[$what vhost-user]}
  unit="rng request (64 bytes)"; [ $what = disk ] && unit="4 KiB read (O_DIRECT)"
  r=$(awk -v a="$v" -v b="$q" 'BEGIN { printf "%.2f", a / b }')
  echo "VIRTIO BENCH $what: instructions per $unit: ours (vhost-user) $v, QEMU's $q, ratio $r"
  figures="$figures; per $unit: ours $v, QEMU's $q instructions (ratio $r)"
done
v=${per_op[rng in-process]} q=${per_op[rng qemu]}
r=$(awk -v a="$v" -v b="$q" 'BEGIN { printf "%.2f", a / b }')
echo "VIRTIO BENCH rng: instructions per rng request (64 bytes): ours (in-process) $v, QEMU's $q, ratio $r"
echo "ok   virtio-pci next to QEMU on real Xen $rel: Debian's Linux $KVER as an HVM guest with qemu-system-xen as its device model and virtio_attach as a second IOREQ server (hvmloader places our BARs, SeaBIOS reads our disk, MSI-X as Xen pirqs) drives two rngs, a console and a SCSI disk of ours next to QEMU's virtio-rng-pci and virtio-scsi-pci; back end and front end killed and restarted mid-run: $n guest and $h dom0 checks passed$figures; $ms ms of QEMU (-icount)"
