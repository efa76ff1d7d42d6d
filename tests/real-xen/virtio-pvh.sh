#!/usr/bin/env bash
# Virtio on real Xen (x86, QEMU; VIRTIO_RELEASES, default 4.17 and 4.20, each with its Debian
# dom0 kernel and tools): Debian's Linux (6.1) as a PVH guest (no QEMU device model) finds four
# virtio PCI functions served from dom0 by xen's virtio_attach example (`--pvh`: the 0xCF8
# read-back and a host bridge at 00:00.0; the guest boots with pci=noacpi): 00:03.0 an
# in-process rng; 00:04.0 an rng, 00:05.0 a console and 00:06.0 a SCSI disk through the
# vhost-user front end, from rust-vmm's vhost-device-rng, -console and -scsi built from their
# published crates with `--features xen` (guest RAM handed over as Xen foreign mappings). The
# guest (tests/real-xen/virtio-guest-init.sh) loads Debian's own virtio and SCSI modules, reads
# /dev/hwrng from each rng, exchanges a line each way with dom0 over the console (the back
# end's TCP side), reads a pattern dom0 put in the disk's file and writes its own, which dom0
# then finds in the file. dom0 (tests/real-xen/virtio-dom0-init.sh) counts virtio_attach's
# system calls per kick (strace). Then vhost-device-rng is killed mid-run: the guest sees its
# device report NEEDS_RESET, the back end is started again, the front end reconnects, and the
# guest resets the device (unbind and bind of virtio-pci) and reads from it again; then
# virtio_attach is killed (SIGKILL) and started again, takes over the IOREQ server from its
# --state file, and the devices carry on. Each queue's interrupts arrive as MSI-X
# (XEN_DMOP_inject_msi into the PVH guest). virtio_attach stops cleanly on SIGTERM.
# Checks, one structured line each (VIRTIO CHECK name: ok|FAIL (detail); dom0's side as
# VIRTIO HOST CHECK). The other way in, with QEMU as the primary device model and the
# benchmark against QEMU's own devices: tests/real-xen/virtio-hvm.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
# shellcheck source=tests/lib/virtio-scenario.sh
. tests/lib/virtio-scenario.sh
virtio_prepare

cfg='name = "vlinux"
type = "pvh"
kernel = "/vlinux-vmlinuz"
ramdisk = "/vlinux.cpio"
cmdline = "console=hvc0 quiet rdinit=/init pci=noacpi"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"'

for rel in ${VIRTIO_RELEASES:-4.17 4.20}; do
  release_dom0 "$rel"
  dom0_initramfs "$rel" "$out/virtio-initramfs-$rel"
  # The guest's RAM: 128 MiB from 0 (PVH); pages Xen did not populate are reported, not mapped
  # or handed over.
  virtio_initramfs pvh vlinux "$cfg" 0-7ffffff
  log="$out/virtio-pvh-$rel.log"
  boot_dom0 "$ir.cpio" plain
  virtio_verdict 40
  bench=$(grep -m1 '^VIRTIO BENCH syscalls-per-kick: [0-9]' <<<"$L") || fail "no system-call count per kick"
  echo "$bench"
  echo "ok   virtio-pci on real Xen $rel (Linux $kver dom0, Xen $rel's xl): Debian's Linux $KVER as a PVH guest (no QEMU) drives two virtio-rng devices, a console and a SCSI disk from dom0 (in-process; vhost-device-rng, -console and -scsi over vhost-user with Xen foreign mappings; the disk's file holds what the guest wrote) with its own modules; the rng's back end killed and restarted mid-run, the device reset by the guest and read again; the front end killed and restarted, taking over the IOREQ server and the devices from its saved state: $n guest and $h dom0 checks passed; $(grep -m1 -o 'stopped after [0-9]* requests ([0-9]* refused)' <<<"$L"); $ms ms of QEMU"
done
