#!/usr/bin/env bash
# Atelier's one entry point on a fresh Debian 12 machine:
#   ./setup.sh run    install what is missing, build, list devices and open the studio
#   ./setup.sh test   install what is missing, build with warnings as errors, run every test
# Options after the command: --sanitize (AddressSanitizer + UBSan build in build-asan/).
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-run}
shift || true
sanitize=no
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=yes ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential meson ninja-build pkg-config python3
  libglib2.0-dev libjson-glib-dev libvulkan-dev glslc libpng-dev
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools
  libgtk-4-dev libadwaita-1-dev libgtksourceview-5-dev librsvg2-common gettext
  desktop-file-utils appstream xvfb xauth
  libsqlite3-dev libsoup-3.0-dev libwebp-dev
  libespeak-ng-dev espeak-ng-data libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good libgtk-4-media-gstreamer
  at-spi2-core dbus-daemon python3-gi gir1.2-atspi-2.0 python3-pyatspi imagemagick xdotool
)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  else
    meson configure "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
}

install_missing

case "$mode" in
  run)
    build build
    ./build/app/atelier-cli devices
    # The schema is compiled into the build directory; nothing is installed.
    GSETTINGS_SCHEMA_DIR=$PWD/build/data exec ./build/app/atelier
    ;;
  test)
    if [ "$sanitize" = yes ]; then
      dir=build-asan
      build "$dir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
      # Full stacks on malloc, so that tests/lsan.supp can name the frames it suppresses.
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0
      export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
      export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
    else
      dir=build
      build "$dir" -Dwerror=true
    fi
    status=0
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=$?
    # One plain closing line for CI: N passed, N failed.
    python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)['result']
    if r in ('OK', 'EXPECTEDFAIL'): passed += 1
    elif r == 'SKIP': skipped += 1
    else: failed += 1
print(f'{passed} passed, {failed} failed, {skipped} skipped')
PY
    exit $status
    ;;
  *)
    echo "usage: ./setup.sh run|test [--sanitize]" >&2
    exit 2
    ;;
esac
