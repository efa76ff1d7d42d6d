# Sourced: a private Rust toolchain from Debian's packages, with the standard library for
# arm64, armhf and i386, so `cargo check --target ...` evaluates xen-sys's const assertions on
# every architecture Xen supports. Only Debian's package registry is used.
#
# Debian publishes rustc-web and libstd-rust-web-dev for every architecture at the same
# version in bookworm's main archive; the toolchain and the foreign std must be the very same
# build, so the version is taken from the arm64 candidate and pinned for all of them.

DEBIAN_RUST_CACHE="${XEN_ABI_CACHE:-/var/cache/xen-abi}/debian-rust"
DEBIAN_RUST_ARCHES="arm64 armhf i386"

# Sets DEBIAN_RUSTC and DEBIAN_RUST_LD to the private toolchain; exits loudly on any failure.
ensure_debian_rust() {
  local need_update=0 a
  for a in $DEBIAN_RUST_ARCHES; do
    if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
      dpkg --add-architecture "$a"
      need_update=1
    fi
  done
  local v
  v=$(apt-cache policy libstd-rust-web-dev:arm64 | awk '/Candidate:/ { print $2 }')
  if [ "$need_update" = 1 ] || [ -z "$v" ] || [ "$v" = "(none)" ]; then
    # A partial failure (a mirror mid-sync) is judged by the candidate check below.
    apt-get update -qq || true
    v=$(apt-cache policy libstd-rust-web-dev:arm64 | awk '/Candidate:/ { print $2 }')
  fi
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    echo "FAIL: Debian has no libstd-rust-web-dev for arm64 (apt-cache policy found none)" >&2
    exit 1
  fi
  local mm
  mm=$(echo "$v" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
  local debs="$DEBIAN_RUST_CACHE/debs-$v" root="$DEBIAN_RUST_CACHE/root-$v"
  mkdir -p "$debs"
  chown _apt "$debs" 2>/dev/null || true
  local want=(
    "rustc-web=$v" "libstd-rust-web-$mm=$v" "libstd-rust-web-dev=$v"
    "libstd-rust-web-dev:arm64=$v" "libstd-rust-web-dev:armhf=$v" "libstd-rust-web-dev:i386=$v"
  )
  if [ "$(ls "$debs"/*.deb 2>/dev/null | wc -l)" -lt ${#want[@]} ]; then
    echo "== downloading Debian's Rust $v (host toolchain + arm64/armhf/i386 std)"
    (cd "$debs" && apt-get download "${want[@]}") || {
      echo "FAIL: could not download Debian's Rust $v packages: ${want[*]}" >&2
      exit 1
    }
  fi
  # The compiler driver links against Debian's LLVM.
  local llvm
  llvm=$(apt-cache show "libstd-rust-web-$mm=$v" | grep -o 'libllvm[0-9]*' | head -1)
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
