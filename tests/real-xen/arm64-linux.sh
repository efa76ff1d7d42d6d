#!/usr/bin/env bash
# Real Xen, arm64, Linux: Xen 4.17 built with IOREQ servers from Debian's source
# (tests/lib/xen-arm64-ioreq.sh) boots, under qemu-system-aarch64, Debian bookworm's arm64 kernel
# as dom0 with Debian's arm64 xen-utils-4.17 (xl, xenstored, xenconsoled; extracted with their
# libraries, nothing installed: tests/lib/dom0-initramfs.sh with DOM0_ARCH=arm64). Dom0 answers
# `xl info`, creates a guest (the same Debian kernel, paused), creates an IOREQ server for it
# (tests/real-xen/arm64-ioreq-probe.c on Debian's arm64 libxendevicemodel: Debian's own arm64
# Xen has no dm_op), runs the x86 Linux dom0 stages' privcmd_check built for aarch64 (the xen
# crate's privcmd and evtchn backends, Debian's rustc-web), starts regbank (the xen crate's
# IoreqServer, aarch64) for the guest and unpauses it; the guest's marker line reaches dom0
# through xenconsoled, and the guest reads and writes regbank's registers with busybox devmem.
# The same dom0 then boots on Debian's own arm64 Xen, where the IOREQ server is refused with
# ENOSYS (regbank is not started) and the guest still comes up.
# A second guest gets a specification=virtio disk served by virtio_mmio_attach and an rng served
# by vhost-device-rng; it checks both, measures instructions per operation on each (the first
# boot runs with QEMU's -icount shift=0, where the guest's CLOCK_MONOTONIC counts the whole
# machine's instructions) and reads the rng again after dom0 killed and restarted its back end.
# One "ARM64 LINUX CHECK <name>: ok|FAIL (detail)" line per check, "VIRTIO BENCH arm64 ..." lines
# with the figures, "ARM64 LINUX TIME" lines with the seconds from QEMU's start to dom0's user
# space and to the guest's marker in dom0.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_ARM64_LINUX
. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
# shellcheck source=tests/lib/xen-arm64-ioreq.sh
. tests/lib/xen-arm64-ioreq.sh
. tests/lib/debian-rust.sh
ensure_debian_rust >/dev/null

out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
log="$out/arm64-linux.log"
: >"$log"
GUEST_MARKER="ARM64 GUEST UP"

ensure_xen_arm64_ioreq
xen=$XEN_ARM64_IOREQ

# Debian's arm64 kernel, dom0 and guest alike: its vmlinuz is an uncompressed Image (the signed
# package's EFI image), which Xen boots as it is.
k=$(SUITE_ARCH=arm64 xen_release_dom0_kernel 4.17) || { echo "FAIL: Debian bookworm's arm64 kernel could not be fetched"; exit 1; }
kroot=${k% *} kver=${k#* }
image="$kroot/boot/vmlinuz-$kver"
mods="$kroot/lib/modules/$kver/kernel/drivers/xen"
[ -s "$image" ] && [ -d "$mods" ] || { echo "FAIL: no Image or drivers/xen modules in $kroot"; exit 1; }
echo "== Linux $kver (Debian bookworm arm64): $(grep -E '^CONFIG_XEN_(PRIVCMD|DEV_EVTCHN|GNTDEV|GRANT_DEV_ALLOC)=|^CONFIG_XENFS=' "$kroot/boot/config-$kver" | tr '\n' ' ')"

# The dom0 initramfs: Debian's arm64 user space (DOM0_ARCH), the guest's kernel and initramfs, the
# IOREQ probe and /init.
DOM0_ARCH=arm64
dom0_initramfs 4.17 "$out/arm64-linux-initramfs"
echo "== dom0 user space: Debian bookworm's arm64 packages in $root:$(cat "$root/packages")"
aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -static -I"$root/usr/include" -o "$ir/ioreq-probe" \
  tests/real-xen/arm64-ioreq-probe.c -L"$root/usr/lib/aarch64-linux-gnu" \
  -lxendevicemodel -lxencall -lxentoolcore -lxentoollog || { echo "FAIL: arm64-ioreq-probe.c does not build on Debian's arm64 libxen-dev"; exit 1; }
# The x86 Linux dom0 stages' privcmd_check (the xen crate's privcmd and evtchn backends) and
# regbank (an IoreqServer), and virtio_mmio_attach (the virtio guest's disk: a
# specification=virtio disk of xl on a loop device in dom0), built static for aarch64 with
# Debian's rustc-web and its arm64 standard library, in one release build (nothing is timed here:
# no need for the server profile).
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc RUSTFLAGS="-C target-feature=+crt-static" \
  debian_cargo build --locked -q --release -p xen --example privcmd_check --example regbank \
  --example virtio_mmio_attach --features vhost-user --target aarch64-unknown-linux-gnu \
  --target-dir "$out/arm64-static" ||
  { echo "FAIL: privcmd_check, regbank and virtio_mmio_attach do not build for aarch64"; exit 1; }
cp "$out"/arm64-static/aarch64-unknown-linux-gnu/release/examples/{privcmd_check,regbank,virtio_mmio_attach} "$ir/"
kmods="$kroot/lib/modules/$kver/kernel"
(mods=$kmods; add_module drivers/block/loop "$ir/lib/modules")
vgir="$out/arm64-linux-virtio-guest-initramfs"
rm -rf "$vgir" && mkdir -p "$vgir"/{bin,dev,proc,sys,tmp,lib/modules}
(mods=$kmods; for m in drivers/virtio/virtio_mmio drivers/block/virtio_blk drivers/char/hw_random/virtio-rng; do add_module "$m" "$vgir/lib/modules"; done)
# A vhost-device back end for aarch64 (its published crate, --features xen, static), and the
# device the guest learns of from a partial device tree (xl 4.17 has no generic virtio option):
# a virtio-mmio node in the virtio window after the disk's. xl 4.17 gives a guest only the SPIs
# of its virtio disks (libxl_arm.c: nr_spis covers the vuart, the disks' SPIs and passed-through
# physical IRQs, and XEN_DMOP_set_irq_level refuses an SPI allocated to a physical IRQ), so the
# rng shares the disk's SPI 33: Linux's virtio_mmio takes its interrupt IRQF_SHARED, and each
# device's handler reads its own InterruptStatus.
. tests/lib/vhost-devices.sh
cp "$(ensure_vhost_device rng 0.1.0 aarch64)" "$ir/vhost-device-rng"
cat >"$out/vguest.dts" <<'DTS'
/dts-v1/;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	passthrough {
		compatible = "simple-bus";
		ranges;
		#address-cells = <2>;
		#size-cells = <2>;
		virtio@2000200 {
			compatible = "virtio,mmio";
			reg = <0x0 0x2000200 0x0 0x200>;
			/* SPI 33 (GIC_SPI 1), edge rising as libxl's own virtio nodes; the GIC's phandle
			   is GUEST_PHANDLE_GIC. */
			interrupts = <0 1 1>;
			interrupt-parent = <65000>;
			dma-coherent;
		};
	};
};
DTS
dtc -q -I dts -O dtb -o "$ir/etc/xen/vguest.dtb" "$out/vguest.dts" || { echo "FAIL: dtc could not compile the virtio guest's partial device tree"; exit 1; }
mkdir -p "$ir/guest"
gir="$out/arm64-linux-guest-initramfs"
rm -rf "$gir" && mkdir -p "$gir"/{bin,dev,proc}
cp "$ir/bin/busybox" "$gir/bin/busybox"
for a in sh poweroff mount grep devmem; do ln -s busybox "$gir/bin/$a"; done
# With "regbank" on its command line (dom0 adds it where regbank serves the guest), the guest
# reads and writes regbank's registers through /dev/mem: the ID, the scratch register, the
# counter that increments per read.
cat >"$gir/init" <<INIT
#!/bin/sh
echo "$GUEST_MARKER"
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
if grep -q ' regbank' /proc/cmdline; then
  echo "REGBANK ID \$(devmem 0xFE000000 32)"
  devmem 0xFE000008 32 0xCAFEF00D
  echo "REGBANK SCRATCH \$(devmem 0xFE000008 32)"
  echo "REGBANK COUNTER \$(devmem 0xFE000010 32) \$(devmem 0xFE000010 32)"
fi
poweroff -f
INIT
chmod +x "$gir/init"
(cd "$gir" && find . | cpio -o -H newc --quiet) | gzip -1 >"$ir/guest/initrd.gz"
cp "$gir/bin/busybox" "$vgir/bin/busybox"
ln -s busybox "$vgir/bin/sh"
cp tests/real-xen/virtio-arm64-guest-init.sh "$vgir/init"
# The benchmark program (CLOCK_MONOTONIC for its instruction count on aarch64: no TSC there).
aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -static -o "$vgir/bin/virtio-bench" tests/real-xen/virtio-bench.c ||
  { echo "FAIL: virtio-bench.c does not build for aarch64"; exit 1; }
(cd "$vgir" && find . | cpio -o -H newc --quiet) | gzip -1 >"$ir/guest/virtio-initrd.gz"
cp "$image" "$ir/guest/Image"
cat >"$ir/etc/xen/guest.cfg" <<CFG
name = "guest"
type = "pvh"
kernel = "/guest/Image"
ramdisk = "/guest/initrd.gz"
cmdline = "console=hvc0 loglevel=4 panic=-1 rdinit=/init"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
cat >"$ir/etc/xen/vguest.cfg" <<CFG
name = "vguest"
type = "pvh"
kernel = "/guest/Image"
ramdisk = "/guest/virtio-initrd.gz"
cmdline = "console=hvc0 loglevel=4 panic=-1 rdinit=/init"
memory = 128
vcpus = 1
disk = [ 'backendtype=standalone,specification=virtio,vdev=xvda,target=/dev/loop0' ]
device_tree = "/etc/xen/vguest.dtb"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
cat >"$ir/init" <<'INIT'
#!/bin/sh
echo "== dom0 user space"
# Dom0's own clock (seconds since its kernel started) at each step: "DOM0 UPTIME step seconds".
up() { echo "DOM0 UPTIME $1 $(cut -d' ' -f1 /proc/uptime)"; }
. /etc/dom0.sh
up xenstored-xenconsoled
xenstore-read -s / >/dev/null 2>&1 && echo "== xenstored answers"
xl info >/tmp/xl-info 2>&1 && echo "== xl info exit 0"
grep -E '^(xen_version|xen_caps|nr_cpus|total_memory) ' /tmp/xl-info | sed 's/^/XLINFO /'
# xenabi.regbank on dom0's command line (the harness sets it where Xen has IOREQ servers):
# regbank serves the guest, which is told so on its command line.
cmdline="console=hvc0 loglevel=4 panic=-1 rdinit=/init"
regbank=
grep -q 'xenabi.regbank' /proc/cmdline && regbank=1 cmdline="$cmdline regbank"
if xl create -p /etc/xen/guest.cfg "cmdline=\"$cmdline\"" >/tmp/xl-create 2>&1; then
  up xl-create-done
  domid=$(xl domid guest)
  echo "== guest created paused: domain $domid"
  # privcmd_check expects dm_op to be there (ESRCH for a missing domain): where the IOREQ
  # server could not be created (Debian's Xen) it is not run.
  if /ioreq-probe "$domid"; then
    /privcmd_check
    echo "== privcmd_check exit status $?"
  fi
  if [ -n "$regbank" ]; then
    serve /tmp/regbank.log /regbank "$domid"
    wait_for serving /tmp/regbank.log
  fi
  xl unpause guest
  up unpaused
  n=0
  until grep -q "ARM64 GUEST UP" /var/log/xen/guest-guest.log 2>/dev/null; do
    sleep 0.2; n=$((n+1)); [ $n -gt 1500 ] && { echo "== TIMEOUT waiting for the guest's marker"; break; }
    # A guest that died (on_crash destroys it) ends the wait.
    # (xenconsoled may write the guest's last lines after the domain is gone: look once more.)
    [ $((n % 10)) = 0 ] && ! xl domid guest >/dev/null 2>&1 && {
      sleep 1
      grep -q "ARM64 GUEST UP" /var/log/xen/guest-guest.log 2>/dev/null || echo "== FAILED: the guest is gone without its marker"
      break
    }
  done
  if grep -q "ARM64 GUEST UP" /var/log/xen/guest-guest.log 2>/dev/null; then
    up guest-marker
    grep -m1 "ARM64 GUEST UP" /var/log/xen/guest-guest.log | sed 's/^/GUEST CONSOLE IN DOM0: /'
  else
    tail -n 15 /var/log/xen/guest-guest.log 2>/dev/null | sed 's/^/GUEST LOG: /'
  fi
  gone guest 120
  grep '^REGBANK ' /var/log/xen/guest-guest.log | sed 's/^/FROM GUEST: /'
  if [ -n "$regbank" ]; then stop regbank "$p" regbank; drain /tmp/regbank.log; fi
else
  echo "== FAILED: xl create"; cat /tmp/xl-create
fi
# The virtio guest: virtio_mmio_attach watches xenstore, xl announces the disk, the guest uses it.
insmod /lib/modules/loop.ko
/bin/busybox dd if=/dev/zero of=/disk.img bs=1048576 count=8 2>/dev/null
printf 'HOST-WROTE-THIS.' | /bin/busybox dd of=/disk.img bs=512 seek=100 conv=notrunc 2>/dev/null
/bin/busybox losetup /dev/loop0 /disk.img && echo "== loop0 over /disk.img"
XEN_LOG=info /virtio_mmio_attach --xenstore >/tmp/va.log 2>&1 &
va=$!
n=0; until grep -q watching /tmp/va.log 2>/dev/null || [ $n -gt 100 ]; do sleep 0.1; n=$((n+1)); done
/vhost-device-rng --socket-path /tmp/rng.sock >/tmp/rng.log 2>&1 &
rb=$!
vr=
# await_vguest PATTERN: until the virtio guest's console has PATTERN; fails (with a TIMEOUT or
# FAILED line but for a guest that finished first) if it finished, went away or 300 s passed.
await_vguest() {
  n=0
  until grep -q "$1" /var/log/xen/guest-vguest.log 2>/dev/null; do
    grep -q "VIRTIO ARM64 DONE" /var/log/xen/guest-vguest.log 2>/dev/null && return 1
    sleep 0.2; n=$((n+1)); [ $n -gt 1500 ] && { echo "== TIMEOUT waiting for '$1' from the virtio guest"; return 1; }
    [ $((n % 50)) = 0 ] && echo "== still waiting for '$1' ($n polls): $(wc -l </var/log/xen/guest-vguest.log) lines, last: $(tail -n 1 /var/log/xen/guest-vguest.log | tr -d '\r')"
    [ $((n % 10)) = 0 ] && ! xl domid vguest >/dev/null 2>&1 && { echo "== FAILED: the virtio guest is gone early"; return 1; }
  done
  return 0
}
if xl create -p /etc/xen/vguest.cfg >/tmp/xl-vcreate 2>&1; then
  up vguest-created
  vdom=$(xl domid vguest)
  echo "== virtio guest created: domain $vdom"
  # The partial device tree's rng, by hand: domid, RAM (128 MiB at GUEST_RAM0), base, SPI.
  n=0; until [ -S /tmp/rng.sock0 ] || [ $n -gt 100 ]; do sleep 0.1; n=$((n+1)); done
  XEN_LOG=info /virtio_mmio_attach "$vdom" 40000000-47ffffff --vhost 0x2000200:33:rng:/tmp/rng.sock0 >/tmp/vr.log 2>&1 &
  vr=$!
  n=0; until grep -q serving /tmp/vr.log 2>/dev/null || [ $n -gt 300 ]; do sleep 0.1; n=$((n+1)); done
  xl unpause vguest
  # The rng's back end dies between the guest's reads (it says when) and is started again;
  # once the front end is connected to it, dom0 says so in sector 301 of the guest's disk.
  if await_vguest "VIRTIO ARM64 PHASE kill-backend"; then
    kill -KILL $rb; wait $rb 2>/dev/null
    echo "== rng back end killed"
    n=0; until grep -q 'rng.sock0 (device type 4): .*disconnected' /tmp/vr.log || [ $n -gt 300 ]; do sleep 0.1; n=$((n+1)); done
    sleep 3
    /vhost-device-rng --socket-path /tmp/rng.sock >/tmp/rng2.log 2>&1 &
    rb=$!
    n=0; until grep -q 'rng.sock0 (device type 4): connected again' /tmp/vr.log || [ $n -gt 600 ]; do sleep 0.1; n=$((n+1)); done
    grep -q 'connected again' /tmp/vr.log && echo "== rng back end restarted, the front end connected again" && up rng-backend-restarted
    printf 'RESTARTED' | /bin/busybox dd of=/dev/loop0 bs=512 seek=301 conv=notrunc,fsync 2>/dev/null
  fi
  await_vguest "VIRTIO ARM64 DONE"
  up vguest-done
  # What maps the guest's RAM by hand goes first (see the guest's /init), then the guest may
  # power off; the disk's front end follows libxl's removal of the device.
  kill -TERM $vr; wait $vr; echo "== virtio_mmio_attach (rng) exit $?"
  vr=
  kill -TERM $rb 2>/dev/null; wait $rb 2>/dev/null
  printf 'RELEASED' | /bin/busybox dd of=/dev/loop0 bs=512 seek=300 conv=notrunc,fsync 2>/dev/null
  grep -a "VIRTIO ARM64" /var/log/xen/guest-vguest.log | tr -d '\r'
  sed 's/^/RNG2: /' /tmp/rng2.log 2>/dev/null
  grep -q "VIRTIO ARM64 DONE" /var/log/xen/guest-vguest.log || tail -n 40 /var/log/xen/guest-vguest.log | tr -d '\r' | sed 's/^/VGUEST LOG: /'
  gone vguest 120
else
  echo "== virtio guest: xl create failed"; sed 's/^/XL: /' /tmp/xl-vcreate
fi
kill -TERM $va; wait $va; echo "== virtio_mmio_attach exit $?"
sed 's/^/VA: /' /tmp/va.log
if [ -n "$vr" ]; then kill -TERM $vr; wait $vr; echo "== virtio_mmio_attach (rng) exit $?"; fi
sed 's/^/VR: /' /tmp/vr.log 2>/dev/null
kill -TERM $rb 2>/dev/null; wait $rb 2>/dev/null
/bin/busybox losetup -d /dev/loop0
echo "VIRTIO ARM64 HOST DATA sector200 $(/bin/busybox dd if=/disk.img bs=512 skip=200 count=1 2>/dev/null | /bin/busybox head -c 16)"
echo "VIRTIO ARM64 HOST DATA md5 $(/bin/busybox dd if=/disk.img bs=4096 skip=128 count=16 2>/dev/null | /bin/busybox md5sum | /bin/busybox cut -d' ' -f1)"
echo "== dom0 done"
reboot -f
INIT
chmod +x "$ir/init"
cpio_file="$out/arm64-linux-initramfs.cpio"
(cd "$ir" && find . | cpio -o -H newc --quiet) >"$cpio_file"
echo "== dom0 initramfs: $(( $(stat -c %s "$cpio_file") / 1024 / 1024 )) MiB"

# Xen as QEMU's kernel, dom0's Image and initramfs as guest-loader modules (QEMU writes them into
# the device tree's /chosen as multiboot,kernel and multiboot,ramdisk nodes, which Xen reads).
# QEMU puts its own device tree at 0x48000000 (RAM base + 128 MiB, where an -initrd would go):
# the modules go above it (a module across it was overwritten: Xen's BUG in free_heap_pages when
# it discarded the modules).
KADDR=0x49000000
RADDR=$(printf '0x%x' $(( (KADDR + $(stat -c %s "$image") + 0x1fffff) & ~0x1fffff )))
XEN_ARGS="console=dtuart dtuart=/pl011@9000000 dom0_mem=1024M dom0_max_vcpus=1 loglvl=all guest_loglvl=all"
# panic=-1: a dom0 kernel that panics reboots at once, and Xen's reboot ends QEMU (-no-reboot).
DOM0_ARGS="console=hvc0 earlycon=xen loglevel=4 panic=-1 rdinit=/init"
# One CPU (ARM64_LINUX_SMP overrides): with two (multi-threaded TCG) the same boot took 10-13 s
# of QEMU instead of 8.5-10 s here.
# With "icount", -icount shift=0,sleep=off as the x86 benchmark runs (virtio-hvm.sh): the virtual
# clock advances one nanosecond per instruction (idle time skipped), so the guest's
# CLOCK_MONOTONIC counts the whole machine's instructions. -icount needs single-threaded TCG.
# The first boot (the virtio guest's benchmark) runs so; ARM64_LINUX_ICOUNT= (empty) leaves it
# out (no figures then).
icount=${ARM64_LINUX_ICOUNT-icount}
qemu_args() { # xen extra-dom0-args [icount]
  local accel=(-accel "tcg,thread=multi")
  [ "${3:-}" = icount ] && accel=(-accel tcg -icount "shift=0,sleep=off")
  QEMU=(qemu-system-aarch64 -machine virt,gic-version=3,virtualization=true -cpu cortex-a57
    "${accel[@]}" -smp "${ARM64_LINUX_SMP:-1}" -m 2048 -nographic -no-reboot
    -kernel "$1" -append "$XEN_ARGS"
    -device "guest-loader,addr=$KADDR,kernel=$image,bootargs=$DOM0_ARGS${2:+ $2}"
    -device "guest-loader,addr=$RADDR,initrd=$cpio_file")
}

# boot XEN LOG: QEMU with it; sets rc, ms, L (the log without carriage returns) and marks (a file:
# when each marker first appeared in the log, in ms from QEMU's start, noted by a watcher).
boot() { # xen log [extra dom0 arguments] [icount]
  local watcher
  log=$2 marks="$2.marks"
  qemu_args "$1" "${3:-}" "${4:-}"
  : >"$marks"
  : >"$log"
  start=$(date +%s%N)
  (
    while sleep 0.2; do
      for m in "Xen version" "== dom0 user space" "GUEST CONSOLE IN DOM0" "== virtio guest created" "DOM0 UPTIME vguest-done"; do
        grep -q "^$m	" "$marks" 2>/dev/null && continue
        grep -qa "$m" "$log" && echo "$m	$(( ($(date +%s%N) - start) / 1000000 ))" >>"$marks"
      done
    done
  ) &
  watcher=$!
  rc=0
  qemu_bounded "$log" "${QEMU[@]}" || rc=$?
  sleep 0.3
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  L=$(tr -d '\r' <"$log")
}
at() { awk -F'\t' -v m="$1" '$1 == m { t = sprintf("%.1f s", $2 / 1000) } END { print (t == "" ? "never" : t) }' "$marks"; }

# The verdict: one line per check; the failed ones are collected in $failed.
failed=()
check() { # name 1|0 detail
  if [ "$2" = 1 ]; then echo "ARM64 LINUX CHECK $1: ok ($3)"; else echo "ARM64 LINUX CHECK $1: FAIL ($3)"; failed+=("$1"); fi
}
has() { grep -qa -- "$1" <<<"$L" && echo 1 || echo 0; }
verdict() { # what: ends the scenario when a check failed
  boot_verdict
  [ ${#failed[@]} = 0 ] || fail "$1: failing checks: ${failed[*]}"
  grep -q '== dom0 done' <<<"$L" || fail "$1: dom0's /init did not finish"
}

# 1. Xen with IOREQ servers: everything, and the IOREQ server.
echo "== dom0: $DOM0_ARGS; modules at $KADDR (Image) and $RADDR (initramfs)"
boot "$xen" "$out/arm64-linux.log" xenabi.regbank "$icount"
echo "== $(for a in "${QEMU[@]}"; do case $a in *' '*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac; done)"
banner=$(grep -m1 -o 'Xen version [^ ]*' <<<"$L" || true)
check xen-ioreq-booted "$(has "Xen version ${XEN_ARM64_SOURCE_VERSION%%+*} ")" "${banner:-no Xen banner}, built with $(tr '\n' ' ' <<<"$XEN_ARM64_IOREQ_CONFIG" | sed 's/ $//')"
check dom0-userspace "$(has '== dom0 user space')" "Linux $kver dom0 ran /init"
check xenstored "$(has '== xenstored answers')" "xenstore-read -s / answered"
info=$(sed -n 's/^XLINFO //p' <<<"$L" | grep -E '^(xen_version|xen_caps) ' | tr -s ' ' | sed 's/ *$//' | paste -sd';' | sed 's/;/; /' || true)
check xl-info "$(has '== xl info exit 0')" "${info:-no xl info output}"
created=$(grep -m1 -o 'guest created paused: domain [0-9]*' <<<"$L" || true)
check guest-created "$([ -n "$created" ] && echo 1 || echo 0)" "${created:-xl create failed}"
probe=$(grep -m1 '^IOREQ ' <<<"$L" || true)
check ioreq-server "$(grep -q ': ok$' <<<"$probe" && echo 1 || echo 0)" "${probe:-no IOREQ line}"
pc=$(grep -m1 '^RESULT: ' <<<"$L" || true)
pcfail=$(grep '^CHECK privcmd .*: FAIL' <<<"$L" | cut -d: -f1 | sed 's/^CHECK privcmd //' | paste -sd, || true)
pcextra=$(grep -m1 '^EXTRAVERSION privcmd ' <<<"$L" | cut -d' ' -f3 || true)
check privcmd-check "$(grep -q '^RESULT: PASS' <<<"$pc" && [ -z "$pcfail" ] && [ "$(grep -c '^CHECK privcmd .*: ok' <<<"$L")" -ge 18 ] &&
  grep -qF "Xen version 4.17$pcextra " <<<"$L" && echo 1 || echo 0)" \
  "aarch64 privcmd_check: ${pc:-no RESULT line}${pcfail:+; failed: $pcfail}; extraversion '$pcextra' read through privcmd"
marker=$(grep -m1 '^GUEST CONSOLE IN DOM0: ' <<<"$L" || true)
check guest-marker "$(grep -q "$GUEST_MARKER" <<<"$marker" && echo 1 || echo 0)" "${marker:-no guest marker in dom0}"
# regbank (the Rust IoreqServer) answered the guest's MMIO: the guest's lines, as dom0 read them
# from its console log, and regbank's own account of its end.
rid=$(sed -n 's/^FROM GUEST: REGBANK ID //p' <<<"$L" | head -1)
rscratch=$(sed -n 's/^FROM GUEST: REGBANK SCRATCH //p' <<<"$L" | head -1)
read -r ra rb < <(sed -n 's/^FROM GUEST: REGBANK COUNTER //p' <<<"$L" | head -1) || true
rend=$(grep -m1 '^regbank: stopped after' <<<"$L" || true)
check regbank-mmio "$([ "$rid" = 0x58454E31 ] && [ "$rscratch" = 0xCAFEF00D ] && [ -n "${ra:-}" ] && [ $((rb - ra)) = 1 ] && echo 1 || echo 0)" \
  "guest's devmem: ID ${rid:-none} (want 0x58454E31), scratch ${rscratch:-none} (want 0xCAFEF00D), counter ${ra:-none} then ${rb:-none}"
check regbank-teardown "$([ -n "$rend" ] && has '== regbank EXIT 0' || echo 0)" "${rend:-no end line from regbank}"
check guest-gone "$(has '== guest gone after')" "the guest ended and xl destroyed it"
# The virtio guest: its checks, and dom0's file holds what it wrote.
served=$(grep -m1 '^VA: virtio_mmio_attach: serving domain' <<<"$L" | sed 's/^VA: //' || true)
check virtio-disk-served "$([ -n "$served" ] && echo 1 || echo 0)" "${served:-virtio_mmio_attach served nothing}; $(grep -m1 '^VA: .*announces' <<<"$L" | sed 's/^VA: virtio_mmio_attach: //' || true)"
vok=$(grep -c '^VIRTIO ARM64 CHECK .*: ok' <<<"$L" || true)
vfail=$(grep '^VIRTIO ARM64 CHECK .*: FAIL' <<<"$L" | sed 's/^VIRTIO ARM64 CHECK //' | paste -sd';' || true)
# 7 for the disk and the rng, 2 benchmark runs, 2 for the rng's back end killed and restarted.
vwant=11
check virtio-guest-checks "$([ "$vok" = $vwant ] && [ -z "$vfail" ] && echo 1 || echo 0)" "$vok of $vwant guest checks passed${vfail:+; failed: $vfail}"
g=$(sed -n 's/^VIRTIO ARM64 DATA md5 //p' <<<"$L" | head -n1)
d=$(sed -n 's/^VIRTIO ARM64 HOST DATA md5 //p' <<<"$L" | head -n1)
check virtio-disk-file "$([ -n "$g" ] && [ "$g" = "$d" ] && has '^VIRTIO ARM64 HOST DATA sector200 GUEST-WROTE-THIS' || echo 0)" "dom0's file: md5 '$d' (the guest wrote '$g') and its sector"
check virtio-teardown "$(grep -q '== virtio_mmio_attach exit 0' <<<"$L" && grep -q '^VA: .*stopped after [0-9]* requests (0 refused), torn down' <<<"$L" && echo 1 || echo 0)" \
  "$(grep -m1 '^VA: .*stopped after' <<<"$L" | sed 's/^VA: virtio_mmio_attach: //' || echo 'no teardown line')"
rng=$(grep -m1 '^VR: .*type 4 from the back end' <<<"$L" | sed 's/^VR: virtio_mmio_attach: //' || true)
check virtio-rng-vhost "$([ -n "$rng" ] && grep -q '== virtio_mmio_attach (rng) exit 0' <<<"$L" && grep -q '^VR: .*stopped after [0-9]* requests (0 refused), torn down' <<<"$L" && echo 1 || echo 0)" \
  "${rng:-no rng device}; $(grep -m1 '^VR: .*stopped after' <<<"$L" | sed 's/^VR: virtio_mmio_attach: //' || echo 'no teardown line')"
# The rng's back end killed mid-run: the front end noticed and connected to the restarted one.
lost=$(grep -m1 '^VR: WARN: vhost-user back end at .*disconnected' <<<"$L" | sed 's/^VR: WARN: //' || true)
again=$(grep -m1 '^VR: INFO: vhost-user back end at .*connected again' <<<"$L" | sed 's/^VR: INFO: //' || true)
check virtio-rng-backend-restart "$(grep -q '^== rng back end killed' <<<"$L" && [ -n "$lost" ] && [ -n "$again" ] && has '^== rng back end restarted' || echo 0)" \
  "${lost:-the front end never noticed that the back end died}; ${again:-never connected again}"
# Instructions per operation: under -icount shift=0 the guest's CLOCK_MONOTONIC ("tsc=", see
# tests/real-xen/virtio-bench.c) counts the whole machine's instructions.
per() { # what who: instructions per operation
  sed -n "s/^VIRTIO ARM64 BENCH $1 $2 ops=\([0-9]*\) bytes=[0-9]* tsc=\([0-9]*\) .*/\2 \1/p" <<<"$L" | head -n1 |
    awk '$2 > 0 { printf "%d", $1 / $2 }'
}
bench_rng=$(per rng vhost-user)
bench_disk=$(per disk in-process)
if [ "$icount" = icount ]; then
  echo "VIRTIO BENCH arm64 rng: instructions per rng request (64 bytes): ours (vhost-user) ${bench_rng:-MISSING}"
  echo "VIRTIO BENCH arm64 disk: instructions per 4 KiB read (O_DIRECT): ours (in-process virtio-blk) ${bench_disk:-MISSING}"
  check virtio-bench-figures "$([ -n "$bench_rng" ] && [ -n "$bench_disk" ] && echo 1 || echo 0)" \
    "instructions per operation (-icount shift=0): rng ${bench_rng:-missing}, disk ${bench_disk:-missing}"
else
  echo "VIRTIO BENCH arm64: not measured (ARM64_LINUX_ICOUNT=$icount: without -icount the figures would be nanoseconds)"
fi
# (Dom0's clock is the machine's virtual clock: under -icount, instructions and skipped idle time.)
echo "ARM64 LINUX TIME virtio-guest: $(awk '/^DOM0 UPTIME vguest-created / { c = $4 } /^DOM0 UPTIME vguest-done / { d = $4 } END { if (c != "" && d != "") printf "%.1f s of dom0'"'"'s clock from xl create to its last check", d - c; else print "never" }' <<<"$L"), $(at '== virtio guest created') to $(at 'DOM0 UPTIME vguest-done') of QEMU"
echo "ARM64 LINUX TIME xen-banner: $(at 'Xen version')"
echo "ARM64 LINUX TIME dom0-userspace: $(at '== dom0 user space')"
echo "ARM64 LINUX TIME guest-marker-in-dom0: $(at 'GUEST CONSOLE IN DOM0')"
echo "ARM64 LINUX TIME qemu-total: $(( ms / 1000 )).$(( ms % 1000 / 100 )) s (exit status $rc${icount:+, -icount shift=0})"
echo "ARM64 LINUX TIME dom0-clock: $(awk '/^DOM0 UPTIME / { printf "%s%s %s s", sep, $3, $4; sep = ", " }' <<<"$L")"
verdict "Xen with IOREQ servers"
t_ioreq=$ms

# 2. The same dom0 and guest on Debian's own arm64 Xen (no IOREQ servers): the guest still comes
# up, and the IOREQ server is refused with ENOSYS (no dm_op), so the check above tells the two
# hypervisors apart.
ensure_xen_arm64_debian "$out"
boot "$XEN_ARM64_DEBIAN" "$out/arm64-linux-debian-xen.log"
banner=$(grep -m1 -o 'Xen version [^ ]*' <<<"$L" || true)
check debian-xen-booted "$(has '== dom0 user space')" "${banner:-no Xen banner} (Debian's xen-hypervisor-4.17-arm64), dom0 reached /init"
probe=$(grep -m1 '^IOREQ ' <<<"$L" || true)
check debian-xen-no-ioreq "$(grep -q 'create_ioreq_server.*FAIL (Function not implemented)' <<<"$probe" && echo 1 || echo 0)" "${probe:-no IOREQ line}"
marker=$(grep -m1 '^GUEST CONSOLE IN DOM0: ' <<<"$L" || true)
check debian-xen-guest-marker "$(grep -q "$GUEST_MARKER" <<<"$marker" && echo 1 || echo 0)" "${marker:-no guest marker in dom0}"
refused=$(grep -m1 '^VA: .*XEN_DMOP_nr_vcpus: ENOSYS' <<<"$L" | sed 's/^VA: virtio_mmio_attach: //' || true)
check debian-xen-virtio-refused "$([ -n "$refused" ] && has '== virtio guest: xl create failed' || echo 0)" "${refused:-no refusal}; xl create failed cleanly"
echo "ARM64 LINUX TIME debian-xen-qemu-total: $(( ms / 1000 )).$(( ms % 1000 / 100 )) s (exit status $rc)"
verdict "Debian's Xen"
echo "ok   arm64: Debian's Linux $kver dom0 and guest with Debian's xl on Xen $XEN_ARM64_SOURCE_VERSION built with IOREQ servers ($((t_ioreq / 1000)) s of QEMU; regbank served the guest's MMIO; a second guest's specification=virtio disk served by virtio_mmio_attach (aarch64) over virtio-mmio, data round-tripped into dom0's file, and an rng from a partial device tree served by vhost-device-rng (aarch64) on the disk's SPI, its back end killed and restarted mid-run; ${bench_rng:-?} instructions per rng request, ${bench_disk:-?} per 4 KiB disk read) and on Debian's arm64 Xen ($((ms / 1000)) s; dm_op: ENOSYS, the virtio disk refused)"
