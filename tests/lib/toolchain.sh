# Sourced by the top-level scripts: makes sure cargo and rustc are there.
# On a machine without a Rust toolchain (a fresh Debian 12), install Debian's rustc-web/cargo-web.
ensure_toolchain() {
  if command -v cargo >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "cargo is missing; run as root (or install rustc-web and cargo-web from Debian)" >&2
    exit 1
  fi
  echo "== installing Debian's Rust toolchain (rustc-web, cargo-web)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rustc-web cargo-web >/dev/null
  # rustfmt/clippy come with the machine's rustup toolchain; Debian's are separate packages.
  apt-get install -y -qq rustfmt-web rust-clippy-web >/dev/null 2>&1 || true
}
