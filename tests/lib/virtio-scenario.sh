# Sourced by the virtio scenarios (tests/real-xen/virtio-pvh.sh, virtio-hvm.sh), after their
# packages are installed: what they build, the dom0 initramfs with the guest in it, and the
# verdict on a boot. The guest's /init is tests/real-xen/virtio-guest-init.sh, dom0's
# tests/real-xen/virtio-dom0-init.sh.
. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh

# virtio_prepare: what both scenarios start from: out (made), Xen and Debian's kernel
# (ensure_xen_x86, ensure_debian_kernel), and what virtio_build builds.
virtio_prepare() {
  out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
  mkdir -p "$out"
  ensure_xen_x86 "$out"
  ensure_debian_kernel
  virtio_build
}

# virtio_guest_root ROOT: busybox and the modules in ROOT (made anew), with ROOT/lib/modules/order
# the order to load them in (from each module's own depends=: busybox insmod resolves nothing).
virtio_guest_root() {
  local root=$1 a m
  rm -rf "$root"
  mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  for a in sh mount insmod cat echo ls dd od wc sort uniq head poweroff sleep grep tr timeout cut readlink basename stty md5sum printf sed; do
    ln -s busybox "$root/bin/$a"
  done
  for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/char/hw_random/virtio-rng \
    drivers/char/virtio_console drivers/scsi/scsi_common drivers/scsi/scsi_mod drivers/scsi/sd_mod \
    drivers/scsi/virtio_scsi block/t10-pi lib/crc-t10dif lib/crc64-rocksoft lib/crc64 \
    crypto/crct10dif_common crypto/crct10dif_generic crypto/crc64_rocksoft_generic; do
    [ -f "$KMODS/$m.ko" ] || { echo "FAIL: no $m.ko in Debian's kernel $KVER"; exit 1; }
    cp "$KMODS/$m.ko" "$root/lib/modules/"
  done
  local left order="" d ok next
  left=$(cd "$root/lib/modules" && ls | sed 's/\.ko$//')
  while [ -n "$left" ]; do
    next=""
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
}

# virtio_build: the static virtio_attach, the back ends from their published crates
# (tests/lib/vhost-devices.sh) and the guest's benchmark program; sets server, rng_backend,
# console_backend, scsi_backend and bench_prog.
virtio_build() {
  . tests/lib/vhost-devices.sh
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --profile server -p xen \
    --features vhost-user --example virtio_attach --target x86_64-unknown-linux-gnu --target-dir "$out/static"
  server="$out/static/x86_64-unknown-linux-gnu/server/examples/virtio_attach"
  rng_backend=$(ensure_vhost_device rng 0.1.0)
  console_backend=$(ensure_vhost_device console 0.1.0)
  scsi_backend=$(ensure_vhost_device scsi 0.1.0)
  bench_prog="$out/virtio-bench"
  gcc -O2 -Wall -Wextra -Werror -static -o "$bench_prog" tests/real-xen/virtio-bench.c
}

# virtio_initramfs MODE NAME CFG RAM: completes the dom0 initramfs in $ir (dom0_initramfs ran)
# with virtio_attach, the back ends, the guest (domain NAME: kernel, cpio and the xl config
# whose text is CFG), both /init scripts and their /etc/virtio.env (RAM: the guest's RAM
# ranges for virtio_attach); writes $ir.cpio.
virtio_initramfs() {
  local mode=$1 name=$2 cfg=$3 ram=$4 groot glog=/var/log/xen/guest-$2.log
  cp "$server" "$ir/virtio_attach"
  cp "$rng_backend" "$ir/vhost-device-rng"
  cp "$console_backend" "$ir/vhost-device-console"
  cp "$scsi_backend" "$ir/vhost-device-scsi"
  for a in nc mkfifo ifconfig dd md5sum head cut printf; do ln -sf busybox "$ir/bin/$a"; done
  groot=$(mktemp -d)
  virtio_guest_root "$groot"
  cp "$bench_prog" "$groot/bin/virtio-bench"
  cp tests/real-xen/virtio-guest-init.sh "$groot/init"
  printf 'MODE=%s\n' "$mode" >"$groot/etc/virtio.env"
  (cd "$groot" && find . | cpio -o -H newc --quiet) >"$ir/$name.cpio"
  rm -rf "$groot"
  cp "$VMLINUZ" "$ir/$name-vmlinuz"
  printf '%s\n' "$cfg" >"$ir/etc/xen/$name.cfg"
  printf 'MODE=%s\nGUEST=%s\nGLOG=%s\nRAM=%s\n' "$mode" "$name" "$glog" "$ram" >"$ir/etc/virtio.env"
  cp tests/real-xen/virtio-dom0-init.sh "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$ir.cpio"
}

# virtio_verdict WANT-GUEST-CHECKS: the verdict on the boot in $log (boot_dom0 ran): every
# check passed, as many as there must be, dom0's file holds what the guest wrote, virtio_attach
# stopped cleanly; sets n and h (the guest's and dom0's passing checks).
virtio_verdict() {
  local g d
  FAIL_TAIL=80
  grep -E '^VIRTIO |^virtio_attach:|^strace: |^backend: |^console-backend: |^scsi-backend: |^qemu-dm: |^== (BACKEND|vhost)|^(INFO|WARN|DEBUG): ' <<<"$L" | sort | uniq -c | sort -rn | head -70 || true
  boot_verdict
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  grep -q '^VIRTIO CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in the guest"
  grep -q '^VIRTIO HOST CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in dom0"
  h=$(grep -c '^VIRTIO HOST CHECK .*: ok' <<<"$L")
  [ "$h" = 5 ] || fail "$h dom0 virtio checks passed, want 5"
  # The file in dom0 holds what the guest wrote to the SCSI disk.
  g=$(sed -n 's/^VIRTIO DATA scsi-md5 \([0-9a-f]*\).*/\1/p' <<<"$L" | head -n1)
  d=$(sed -n 's/^VIRTIO HOST DATA scsi-md5 \([0-9a-f]*\).*/\1/p' <<<"$L" | head -n1)
  [ -n "$g" ] && [ "$g" = "$d" ] || fail "dom0's disk file holds md5 '$d', the guest wrote '$g'"
  grep -q '^VIRTIO HOST DATA scsi-sector GUEST-WROTE-THIS' <<<"$L" || fail "dom0's disk file lacks the guest's sector"
  h=$((h + 2))
  grep -q '^VIRTIO DONE' <<<"$L" || fail "the guest did not finish its checks"
  grep -q '== VIRTIO EXIT 0' <<<"$L" || fail "virtio_attach did not exit cleanly on SIGTERM"
  grep -q '^virtio_attach: stopped after [0-9]* requests' <<<"$L" || fail "virtio_attach did not report its teardown"
  n=$(grep -c '^VIRTIO CHECK .*: ok' <<<"$L")
  [ "$n" = "$1" ] || fail "$n virtio checks passed, want $1"
}
