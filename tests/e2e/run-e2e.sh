#!/usr/bin/env bash
# The studio end to end, as a new user meets it: tiny generated models in the default
# models folder, the real `atelier` under Xvfb with the accessibility bus, driven by
# drive.py (pyatspi) through every page. A fresh HOME keeps the user's data untouched.
#
# Usage: run-e2e.sh SOURCE-DIR BUILD-DIR ATELIER GEN-TEXT-MODEL GEN-SD-MODEL SCREENSHOT-DIR
set -euo pipefail

if [ $# -ne 6 ]; then
  echo "usage: $0 SOURCE-DIR BUILD-DIR ATELIER GEN-TEXT-MODEL GEN-SD-MODEL SCREENSHOT-DIR" >&2
  exit 2
fi
source_dir=$(realpath "$1")
build_dir=$(realpath "$2")
atelier=$(realpath "$3")
gen_text=$(realpath "$4")
gen_sd=$(realpath "$5")
shots=$6
mkdir -p "$shots"
rm -f "$shots"/*.png
shots=$(realpath "$shots")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home
export XDG_DATA_HOME=$HOME/.local/share
export XDG_CONFIG_HOME=$HOME/.config
export XDG_CACHE_HOME=$HOME/.cache
export XDG_STATE_HOME=$HOME/.local/state
export XDG_RUNTIME_DIR=$tmp/runtime
# Icons and the system's data stay visible; only the user's folders are new.
export XDG_DATA_DIRS=/usr/local/share:/usr/share
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset ATELIER_LIBRARY_DIR DBUS_SESSION_BUS_ADDRESS AT_SPI_BUS_ADDRESS GTK_A11Y NO_AT_BRIDGE

# An empty models-folder setting means this default folder.
models=$XDG_DATA_HOME/atelier/models
mkdir -p "$models"
"$gen_text" --vocab "$source_dir/tests/data/vocab/ggml-vocab-llama-spm.gguf" \
  "$models/tiny-llama.gguf" >/dev/null
"$gen_sd" "$models/tiny-sd.safetensors" >/dev/null

# The project folder is chosen in a file chooser a script cannot drive well; a person
# would have picked it once, so it is set as that choice would be kept.
project=$tmp/project
mkdir -p "$project"
export GSETTINGS_SCHEMA_DIR=$build_dir/data
export GSETTINGS_BACKEND=keyfile
mkdir -p "$XDG_CONFIG_HOME/glib-2.0/settings"
cat > "$XDG_CONFIG_HOME/glib-2.0/settings/keyfile" <<EOF
[org/atelier/Atelier]
project-folder='$project'
EOF

export GSK_RENDERER=cairo
export E2E_ATELIER=$atelier E2E_SHOTS=$shots E2E_PROJECT=$project E2E_LOG=$tmp/atelier.log
status=0
# Only drive.py's TAP goes to stdout (fd 3): the bus and the services it starts say
# things there too.
exec 3>&1
xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- bash -c '
  /usr/libexec/at-spi-bus-launcher --launch-immediately & bus=$!
  /usr/bin/python3 "$0" >&3; status=$?
  kill $bus 2>/dev/null
  exit $status' "$source_dir/tests/e2e/drive.py" >&2 || status=$?
if [ $status -ne 0 ]; then
  echo "# the app's output:"
  sed 's/^/# /' "$tmp/atelier.log"
fi
exit $status
