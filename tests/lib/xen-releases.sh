# Sourced: the Xen releases the spec is checked against, each with the Debian suite that ships
# it, and their public headers fetched from Debian's registry (libxen-dev, extracted into the
# cache; nothing is installed). Usage: xen_release_headers 4.14 -> prints the header directory.
#
# Each suite gets its own apt configuration (its own sources, lists and cache; an empty dpkg
# status), so the machine's apt state and sources are left alone.
XEN_RELEASES="4.14 4.17 4.20"
XEN_RELEASES_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/releases"

xen_release_suite() { # release -> Debian suite
  case $1 in
    4.14) echo bullseye ;;
    4.17) echo bookworm ;;
    4.20) echo trixie ;;
    *) echo "no Debian suite is known for Xen $1" >&2; return 1 ;;
  esac
}

suite_apt() { # suite cmd...
  local suite=$1; shift
  local d="$XEN_RELEASES_DIR/apt-$suite"
  if [ ! -f "$d/apt.conf" ]; then
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial"
    : >"$d/status"
    cat >"$d/sources.list" <<SRC
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SRC
    cat >"$d/apt.conf" <<CONF
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Dir::Etc::sourcelist "$d/sources.list";
Dir::Etc::sourceparts "-";
Dir::State "$d/state";
Dir::State::status "$d/status";
Dir::Cache "$d/cache";
CONF
    chown -R _apt "$d" 2>/dev/null || true
  fi
  APT_CONFIG="$d/apt.conf" "$@"
}

# xen_release_headers RELEASE: the directory holding that release's xen/ headers (fetched
# and extracted once; the package version is recorded next to it).
xen_release_headers() {
  local rel=$1 suite dir deb ver
  suite=$(xen_release_suite "$rel") || return 1
  dir="$XEN_RELEASES_DIR/$rel"
  if [ ! -f "$dir/usr/include/xen/xen.h" ]; then
    suite_apt "$suite" apt-get update -qq >/dev/null 2>&1 || true
    ver=$(suite_apt "$suite" apt-cache policy libxen-dev 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }')
    if [ -z "$ver" ]; then
      echo "FAIL: Debian $suite has no libxen-dev candidate (is deb.debian.org reachable?)" >&2
      return 1
    fi
    case $ver in
      "$rel".*) ;;
      *) echo "FAIL: Debian $suite's libxen-dev is $ver, not Xen $rel" >&2; return 1 ;;
    esac
    mkdir -p "$dir.deb"
    chown _apt "$dir.deb" 2>/dev/null || true
    (cd "$dir.deb" && suite_apt "$suite" apt-get download -qq "libxen-dev=$ver") || {
      echo "FAIL: could not download libxen-dev $ver from $suite" >&2; return 1; }
    deb=$(ls "$dir.deb"/libxen-dev_*.deb | head -1)
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp"
    echo "$ver" >"$dir.tmp/version"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/usr/include/xen"
}

xen_release_package_version() { # release -> the libxen-dev version its headers came from
  cat "$XEN_RELEASES_DIR/$1/version"
}
