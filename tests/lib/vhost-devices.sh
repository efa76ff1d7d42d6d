# Sourced: rust-vmm's vhost-device back ends, built from their published crates with the `xen`
# feature (the Xen variant of the vhost-user memory messages), pinned, static (they run in any
# release's dom0 without its libraries), cached. `cargo install` fetches from crates.io.

VHOST_DEVICES_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/vhost-devices"

# ensure_vhost_device NAME VERSION: prints the binary's path; exits loudly on any failure.
ensure_vhost_device() {
  local name=$1 version=$2 root="$VHOST_DEVICES_DIR/$1-$2"
  local bin="$root/bin/vhost-device-$name"
  if [ ! -x "$bin" ]; then
    echo "== building vhost-device-$name $version --features xen (static, cached in $root)" >&2
    RUSTFLAGS="-C target-feature=+crt-static" cargo install --locked -q --root "$root.tmp" \
      --target x86_64-unknown-linux-gnu --features xen --version "$version" \
      "vhost-device-$name" >&2 || { echo "FAIL: cargo install vhost-device-$name $version --features xen" >&2; exit 1; }
    rm -rf "$root" && mv "$root.tmp" "$root"
  fi
  ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked' ||
    { echo "FAIL: $bin is not static" >&2; exit 1; }
  echo "$bin"
}
