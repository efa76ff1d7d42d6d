# Sourced: a private Rust toolchain from Debian's packages, with the standard library for
# arm64, armhf and i386, so `cargo check --target ...` evaluates xen-sys's const assertions on
# every architecture Xen supports. Only Debian's package registry is used, through a private apt
# configuration (the machine's dpkg architectures are left alone).
#
# The toolchain and the foreign std must be the very same build: the version is the arm64
# candidate of libstd-rust-web-dev, pinned for every package.
. "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

DEBIAN_RUST_CACHE="${XEN_ABI_CACHE:-/var/cache/xen-abi}/debian-rust"

# Sets DEBIAN_RUSTC and DEBIAN_RUST_LD to the private toolchain; exits loudly on any failure.
ensure_debian_rust() {
  local v
  v=$(private_apt_candidate libstd-rust-web-dev:arm64)
  if [ -z "$v" ]; then
    private_apt_update
    v=$(private_apt_candidate libstd-rust-web-dev:arm64)
  fi
  if [ -z "$v" ]; then
    echo "FAIL: Debian has no libstd-rust-web-dev for arm64 (apt-cache policy found none)" >&2
    exit 1
  fi
  local mm
  mm=$(echo "$v" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
  local debs="$DEBIAN_RUST_CACHE/debs-$v" root="$DEBIAN_RUST_CACHE/root-$v"
  local want=(
    "rustc-web:amd64=$v" "libstd-rust-web-$mm:amd64=$v" "libstd-rust-web-dev:amd64=$v"
    "libstd-rust-web-dev:arm64=$v" "libstd-rust-web-dev:armhf=$v" "libstd-rust-web-dev:i386=$v"
  )
  if [ "$(ls "$debs"/*.deb 2>/dev/null | wc -l)" -lt ${#want[@]} ]; then
    echo "== downloading Debian's Rust $v (host toolchain + arm64/armhf/i386 std)"
    private_apt_download "$debs" "${want[@]}" || {
      echo "FAIL: could not download Debian's Rust $v packages: ${want[*]}" >&2
      exit 1
    }
  fi
  # The compiler driver links against Debian's LLVM.
  local llvm
  llvm=$(private_apt apt-cache show "libstd-rust-web-$mm:amd64=$v" | grep -o 'libllvm[0-9]*' | head -1)
  DEBIAN_RUST_PACKAGES="$llvm"
  [ -n "$llvm" ] && ensure_packages "$llvm"
  if [ ! -x "$root/usr/bin/rustc" ]; then
    rm -rf "$root.tmp"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$root.tmp"; done
    mv "$root.tmp" "$root"
  fi
  DEBIAN_RUSTC="$root/usr/bin/rustc"
  DEBIAN_RUST_LD="$root/usr/lib/x86_64-linux-gnu"
  LD_LIBRARY_PATH="$DEBIAN_RUST_LD" "$DEBIAN_RUSTC" --version
}

# cargo with the private toolchain: debian_cargo ARGS...
debian_cargo() {
  LD_LIBRARY_PATH="$DEBIAN_RUST_LD" RUSTC="$DEBIAN_RUSTC" cargo "$@"
}
