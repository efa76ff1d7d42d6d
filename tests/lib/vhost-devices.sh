# Sourced: rust-vmm's vhost-device back ends, built from their published crates with the `xen`
# feature (the Xen variant of the vhost-user memory messages), pinned, static (they run in any
# release's dom0 without its libraries), cached. `cargo install` fetches from crates.io.

VHOST_DEVICES_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/vhost-devices"

# ensure_vhost_device NAME VERSION [aarch64]: prints the binary's path; exits loudly on any
# failure. For aarch64 it is cross-built with Debian's rustc-web and its arm64 standard library
# (tests/lib/debian-rust.sh, ensure_debian_rust run first).
ensure_vhost_device() {
  local name=$1 version=$2 arch=${3:-x86_64} root="$VHOST_DEVICES_DIR/$1-$2"
  [ "$arch" = x86_64 ] || root+="-$arch"
  local bin="$root/bin/vhost-device-$name"
  if [ ! -x "$bin" ]; then
    echo "== building vhost-device-$name $version --features xen for $arch (static, cached in $root)" >&2
    local build=(cargo)
    [ "$arch" = x86_64 ] || build=(debian_cargo)
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      RUSTFLAGS="-C target-feature=+crt-static" "${build[@]}" install --locked -q --root "$root.tmp" \
      --target "$arch-unknown-linux-gnu" --features xen --version "$version" \
      "vhost-device-$name" >&2 || { echo "FAIL: cargo install vhost-device-$name $version --features xen for $arch" >&2; exit 1; }
    rm -rf "$root" && mv "$root.tmp" "$root"
  fi
  # `file` is not among the packages: the ELF header says static (no program interpreter).
  if readelf -lW "$bin" | grep -q 'program interpreter'; then
    echo "FAIL: $bin is not static" >&2; exit 1
  fi
  echo "$bin"
}
