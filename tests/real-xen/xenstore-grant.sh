#!/usr/bin/env bash
# Real xenstore and grant tables: a Linux PV dom0 with Debian's xenstored (started by the
# harness) runs xen's xenstore_grant_check example. First `local`: the wire-protocol client
# against xenstored over its socket and over /dev/xen/xenbus (read, write, directory, mkdir, rm,
# permissions, transactions with a conflict retried, watches). Then `frontend DOMID` as the back
# end of the freestanding PVH test guest (cmdline "frontend"): a watch fired by the guest's own
# xenstore write; the guest grants a page, dom0 maps it with xen::grant (gntdev), checks it and
# writes back, grant-copies from and into it; dom0 shares a page with gntalloc, which the guest
# copies with GNTTABOP_copy; after dom0 drops its mapping the guest finds its grant entry no
# longer in use. Last, xen's pv_echo_backend example as the back end of the guest's
# `echo-frontend` mode: the xenbus handshake (the example creates both device directories as a
# toolstack would), the ring granted, an event channel, 20 requests echoed, Closing to Closed.
# Every check printed by name, on each release of XSGRANT_RELEASES ("4.17 4.20"),
# each with its own dom0 (tests/lib/dom0-initramfs.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
ensure_debian_rust >/dev/null

. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
ensure_debian_kernel

log=/dev/null
build_ioreq_programs "$out" # sets guest (the PVH test guest)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --release -p xen --features std,vm-memory \
  --example xenstore_grant_check --target x86_64-unknown-linux-gnu --target-dir "$out/static" ||
  fail "xenstore_grant_check does not build"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --release -p xen --features std,vm-memory \
  --example pv_echo_backend --target x86_64-unknown-linux-gnu --target-dir "$out/static" ||
  fail "pv_echo_backend does not build"
check="$out/static/x86_64-unknown-linux-gnu/release/examples/xenstore_grant_check"
echo_be="$out/static/x86_64-unknown-linux-gnu/release/examples/pv_echo_backend"
echo "     xenstore_grant_check $(sha256sum "$check" | cut -c1-16), guest $(sha256sum "$guest" | cut -c1-16) (sha256): the same files on every release"

make_initramfs() { # release cpio
  dom0_initramfs "$1" "$out/xsgrant-initramfs-$1"
  cp "$guest" "$ir/guest.elf"
  cp "$check" "$ir/xenstore_grant_check"
  cp "$echo_be" "$ir/pv_echo_backend"
  pvh_guest_cfg frontend frontend >"$ir/etc/xen/frontend.cfg"
  pvh_guest_cfg echo echo-frontend >"$ir/etc/xen/echo.cfg"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
timeout 120 /xenstore_grant_check local >/tmp/local.log 2>&1
echo "== local EXIT $?"
sed 's/^/local: /' /tmp/local.log
xl create -p /etc/xen/frontend.cfg
gd=$(xl domid frontend)
echo "== frontend domain $gd"
serve /tmp/fe.log timeout 180 /xenstore_grant_check frontend "$gd"
wait_for "watching" /tmp/fe.log && xl unpause frontend
sed 's/^/frontend: /' /tmp/fe.log
# The rest as it comes, so a hang shows how far it got.
cat <&3 | tee -a /tmp/fe.log | sed 's/^/frontend: /'; exec 3<&-
wait "$p"
echo "== frontend EXIT $?"
gone frontend 60
xl create -p /etc/xen/echo.cfg
ed=$(xl domid echo)
echo "== echo domain $ed"
serve /tmp/echo.log timeout 180 /pv_echo_backend --toolstack "$ed"
wait_for "watching" /tmp/echo.log && xl unpause echo
sed 's/^/echo: /' /tmp/echo.log
cat <&3 | tee -a /tmp/echo.log | sed 's/^/echo: /'; exec 3<&-
wait "$p"
echo "== echo EXIT $?"
gone echo 60
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$2"
}

summary=()
FAIL_TAIL=80
for rel in ${XSGRANT_RELEASES:-4.17 4.20}; do
  release_dom0 "$rel"
  make_initramfs "$rel" "$out/xsgrant-initramfs-$rel.cpio"
  log="$out/xenstore-grant-$rel.log"
  boot_dom0 "$out/xsgrant-initramfs-$rel.cpio" plain
  L=$(sed 's/^(XEN) //' <<<"$L")
  grep -E '^(local|frontend|echo): |^\(d[0-9]+\) GUEST|^== ' <<<"$L" || true
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  boot_verdict
  grep -q 'CHECK .*: FAIL' <<<"$L" && fail "failing checks: $(grep 'CHECK .*: FAIL' <<<"$L")"
  grep -q '^== local EXIT 0' <<<"$L" || fail "the local xenstore checks did not pass"
  grep -q '^local: RESULT: PASS' <<<"$L" || fail "no local RESULT: PASS line"
  grep -q '^== frontend EXIT 0' <<<"$L" || fail "the back end's checks did not pass"
  grep -q '^frontend: RESULT: PASS' <<<"$L" || fail "no frontend RESULT: PASS line"
  grep -q 'GUEST RESULT: PASS' <<<"$L" || fail "the guest's checks did not pass"
  grep -q '== [a-z]* TIMEOUT' <<<"$L" && fail "a guest did not finish"
  grep -q '^== echo EXIT 0' <<<"$L" || fail "pv_echo_backend failed"
  grep -q '^echo: pv_echo_backend: closed after echoing 20 requests' <<<"$L" || fail "pv_echo_backend did not echo the guest's 20 requests and close"
  [ "$(grep -c 'GUEST RESULT: PASS' <<<"$L")" = 2 ] || fail "the echo front end's checks did not pass"
  nl=$(grep -c '^local: CHECK .*: ok' <<<"$L")
  nf=$(grep -c '^frontend: CHECK .*: ok' <<<"$L")
  ng=$(grep -c 'GUEST CHECK .*: ok' <<<"$L")
  echo "ok   xenstore and grant tables on Xen $rel (Linux $kver dom0): $nl xenstore checks (socket and xenbus), $nf back-end checks, $ng guest checks (both front ends); pv_echo_backend: $(grep -m1 -o 'connected: .*' <<<"$L"), $(grep -m1 -o 'closed after .*' <<<"$L"); $ms ms of QEMU"
  summary+=("$rel|$nl|$nf|$ng|20 echoed")
done
echo "     release | xenstore checks | back-end checks | guest checks | pv_echo_backend"
printf '     %s\n' "${summary[@]}" | sed 's/|/ | /g'
