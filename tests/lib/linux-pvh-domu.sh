# Linux as a PVH domU for the IOREQ scenario: Debian's kernel with a busybox initramfs whose init
# checks the regbank device through /dev/mem (busybox devmem: 8/16/32/64-bit MMIO) from both of
# its vCPUs (each has its own ioreq slot and event channel), times two threads reading on both
# vCPUs at once against the Rust server, the C server and the Rust server again (mmio-bench; it
# writes the phase register so dom0 swaps the servers: 7 after the first run, 8 after the C one),
# and then balloons down, which makes Xen broadcast IOREQ_TYPE_INVALIDATE to every IOREQ server
# of the domain. It prints "LINUX CHECK <name>: ok|FAIL ..." and "LINUX BENCH <server> ..." lines
# on its console (hvc0) and powers off.
# Source it; needs VMLINUZ (ensure_debian_kernel) and busybox-static.

# build_linux_domu DIR MMIO-BENCH: writes DIR/linux-vmlinuz, DIR/linux-domu.cpio and
# DIR/etc/xen/linux.cfg; MMIO-BENCH is the static mmio-bench binary.
build_linux_domu() {
  local dir=$1 bench=$2 root
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys}
  cp /bin/busybox "$root/bin/busybox"
  cp "$bench" "$root/bin/mmio-bench"
  for a in sh mount devmem sleep cat echo poweroff taskset nproc; do ln -s busybox "$root/bin/$a"; done
  cat >"$root/init" <<'DOMU'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
check() { # name got want
  if [ "$2" = "$3" ]; then echo "LINUX CHECK $1: ok ($2)"; else echo "LINUX CHECK $1: FAIL (got $2, want $3)"; fi
}
B=0xFE000000
check "devmem 32-bit read of the ID register" "$(devmem $B 32)" 0x58454E31
check "devmem 16-bit read" "$(devmem $B 16)" 0x4E31
check "devmem 8-bit read" "$(devmem $B 8)" 0x31
devmem 0xFE000008 64 0x1122334455667788
check "devmem 64-bit write and read back" "$(devmem 0xFE000008 64)" 0x1122334455667788
devmem 0xFE000008 32 0xCAFEF00D
check "devmem 32-bit write and read back" "$(devmem 0xFE000008 32)" 0xCAFEF00D
a=$(devmem 0xFE000010 32); b=$(devmem 0xFE000010 32)
check "the counter increments per read" "$((b - a))" 1
check "two vCPUs online" "$(nproc)" 2
# Two threads, one per vCPU, 1000 reads each: Rust, then C, then Rust again (dom0 swaps the
# servers when the phase register says so; the ID register tells which one answers).
echo "LINUX BENCH rust $(mmio-bench 2 1000)"
devmem 0xFE000038 32 7
until [ "$(devmem $B 32)" = 0x43535256 ]; do :; done
echo "LINUX BENCH c $(mmio-bench 2 1000)"
devmem 0xFE000038 32 8
until [ "$(devmem $B 32)" = 0x58454E31 ]; do :; done
echo "LINUX BENCH rust-again $(mmio-bench 2 1000)"
check "devmem from vCPU 0" "$(taskset 1 devmem $B 32)" 0x58454E31
taskset 2 devmem 0xFE000008 32 0x0BADCAFE
check "write from vCPU 1, read back on vCPU 0" "$(taskset 1 devmem 0xFE000008 32)" 0x0BADCAFE
a=$(taskset 1 devmem 0xFE000010 32); b=$(taskset 2 devmem 0xFE000010 32)
check "the counter across vCPUs" "$((b - a))" 1
# Balloon down by 16 MiB: the balloon driver returns pages with XENMEM_decrease_reservation,
# after which Xen sends IOREQ_TYPE_INVALIDATE to every IOREQ server and waits for the answers.
bal=/sys/devices/system/xen_memory/xen_memory0
before=$(cat $bal/info/current_kb)
echo $((before - 16384)) >$bal/target_kb
n=0; while [ "$(cat $bal/info/current_kb)" -gt $((before - 16384)) ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
check "balloon released 16 MiB" "$(( before - $(cat $bal/info/current_kb) ))" 16384
check "the device still answers after the invalidations" "$(devmem $B 32)" 0x58454E31
echo "LINUX DONE"
poweroff -f
DOMU
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet) >"$dir/linux-domu.cpio"
  rm -rf "$root"
  cp "$VMLINUZ" "$dir/linux-vmlinuz"
  cat >"$dir/etc/xen/linux.cfg" <<'CFG'
name = "linux"
type = "pvh"
kernel = "/linux-vmlinuz"
ramdisk = "/linux-domu.cpio"
cmdline = "console=hvc0 quiet rdinit=/init"
memory = 128
vcpus = 2
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}
