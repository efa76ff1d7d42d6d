# Sourced: the nightly Rust toolchain the race check (tests/race-check.sh) and the guided spec
# fuzz (tests/spec-fuzz-guided.sh) run under, and cargo-fuzz for the latter. Only those two use
# it: ThreadSanitizer needs `-Zsanitizer=thread` and a standard library rebuilt with it from
# `rust-src` (`-Zbuild-std`), which no stable or Debian toolchain offers; cargo-fuzz is made for
# a nightly (its sanitizers and -Z options), and building the fuzz target with this one keeps
# it away from the toolchain the crates are built and tested with. Nothing users build comes
# from it. Pinned to one nightly, installed with rustup-init from Rust's own distribution
# server into the cache (the machine's ~/.cargo and ~/.rustup are left alone). The names say
# "race" because the race check came first.

RACE_TOOLCHAIN=nightly-2026-05-19
RACE_HOME="${XEN_ABI_CACHE:-/var/cache/xen-abi}/race-rust"

# Sets RACE_BIN to the toolchain's bin directory (cargo, rustc); exits loudly on any failure.
ensure_race_toolchain() {
  local host=x86_64-unknown-linux-gnu
  RACE_BIN="$RACE_HOME/rustup/toolchains/$RACE_TOOLCHAIN-$host/bin"
  local src="$RACE_HOME/rustup/toolchains/$RACE_TOOLCHAIN-$host/lib/rustlib/src/rust/library"
  if [ -x "$RACE_BIN/cargo" ] && [ -d "$src" ]; then
    return 0
  fi
  echo "== installing Rust $RACE_TOOLCHAIN with rust-src into $RACE_HOME (the race check and the guided spec fuzz only)"
  mkdir -p "$RACE_HOME"
  local init="$RACE_HOME/rustup-init"
  curl -sSfL --retry 3 -o "$init.part" \
    "https://static.rust-lang.org/rustup/dist/$host/rustup-init" &&
    mv "$init.part" "$init" && chmod +x "$init" || {
    echo "FAIL: could not download rustup-init from static.rust-lang.org" >&2
    exit 1
  }
  RUSTUP_HOME="$RACE_HOME/rustup" CARGO_HOME="$RACE_HOME/cargo" "$init" -y -q \
    --no-modify-path --profile minimal --default-toolchain "$RACE_TOOLCHAIN" \
    --component rust-src >/dev/null || {
    echo "FAIL: rustup-init could not install $RACE_TOOLCHAIN with rust-src" >&2
    exit 1
  }
  [ -x "$RACE_BIN/cargo" ] && [ -d "$src" ] || {
    echo "FAIL: $RACE_TOOLCHAIN installed without cargo or rust-src ($RACE_BIN, $src)" >&2
    exit 1
  }
}

CARGO_FUZZ_VERSION=0.13.2

# Sets CARGO_FUZZ to cargo-fuzz $CARGO_FUZZ_VERSION, built from crates.io (--locked) with the
# nightly into the cache on first use; needs ensure_race_toolchain first. Exits loudly on failure.
ensure_cargo_fuzz() {
  local root="$RACE_HOME/cargo-fuzz-$CARGO_FUZZ_VERSION"
  CARGO_FUZZ="$root/bin/cargo-fuzz"
  if [ -x "$CARGO_FUZZ" ]; then
    return 0
  fi
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io into $root (the guided spec fuzz only)"
  local build
  build=$(mktemp -d)
  "$RACE_BIN/cargo" install -q cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked \
    --root "$root" --target-dir "$build" </dev/null || {
    rm -rf "$build"
    echo "FAIL: cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed" >&2
    exit 1
  }
  rm -rf "$build"
  [ -x "$CARGO_FUZZ" ] || {
    echo "FAIL: cargo install put no cargo-fuzz at $CARGO_FUZZ" >&2
    exit 1
  }
}
