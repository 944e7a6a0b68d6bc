#!/usr/bin/env bash
# Build the Polar TEP JupyterLab extension (extensions/) into one wheel: the server extension polartep_lab plus the
# JupyterLab plugin, built from its TypeScript sources and shipped prebuilt as data files
# (share/jupyter/labextensions/polartep-lab, etc/jupyter/jupyter_server_config.d/polartep_lab.json).
#
# Usage: extensions/build.sh            builds if needed; prints the wheel's path
#        extensions/build.sh --hash     prints the hash of the sources (images/build.sh tags the base image with it)
# Environment: PYTHON  the venv's python with JupyterLab (default: .venv/bin/python); it runs the JupyterLab builder
#              POLARTEP_EXTENSION_DIST  where the wheel goes (default: build/extension)
#
# Guarantees:
#   * Offline after the first `npm ci` (package-lock.json is committed; npm's cache serves later runs). The builder is
#     given the installed JupyterLab's own core description (--core-package-file), because without it
#     `jupyter labextension build` looks up @jupyterlab/core-meta online and fails (see SETUP-NOTES).
#   * Idempotent: the wheel is rebuilt only when a source file (SOURCES below) changed; seconds otherwise.
#   * No stale plugin chunks: lib/ and labextension/ are removed before each build, so the wheel holds exactly one
#     build's files.
#   * Concurrent calls (make install and an image build) wait for each other (flock).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="${POLARTEP_EXTENSION_DIST:-$ROOT/build/extension}"
WHEEL_NAME=polartep_lab-0.1.0-py3-none-any.whl
# Everything that goes into the wheel, relative to extensions/.
SOURCES=(package.json package-lock.json tsconfig.json pyproject.toml install.json src style polartep_lab jupyter-config)

source_hash() {
    (cd "$HERE" && find "${SOURCES[@]}" -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

if [ "${1:-}" = --hash ]; then
    source_hash
    exit 0
fi

mkdir -p "$DIST"
exec 9>"$DIST/.lock"
flock 9
log() { echo "extension: $*" >&2; }

hash="$(source_hash)"
if [ -f "$DIST/$WHEEL_NAME" ] && [ "$(cat "$DIST/source-hash" 2>/dev/null)" = "$hash" ]; then
    echo "$DIST/$WHEEL_NAME"
    exit 0
fi

[ -x "$PYTHON" ] || { echo "extension: $PYTHON not found; run make install first" >&2; exit 1; }
# Absolute (the build runs in extensions/), without resolving the venv's symlinked python.
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
core="$("$PYTHON" -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging" / "package.json")')"
[ -f "$core" ] || { echo "extension: JupyterLab's core description $core is missing" >&2; exit 1; }

cd "$HERE"
lock_hash="$(sha256sum package-lock.json | cut -c1-12)"
if [ "$(cat node_modules/.polartep-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
    log "npm ci (extensions/package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$lock_hash" > node_modules/.polartep-lock-hash
fi

log "building the JupyterLab plugin"
started=$SECONDS
rm -rf lib labextension tsconfig.tsbuildinfo
node_modules/.bin/tsc >&2
# The venv's jupyter runs the builder from node_modules/@jupyterlab/builder (npm, pinned in package-lock.json).
PATH="$(dirname "$PYTHON"):$PATH" "$(dirname "$PYTHON")/jupyter" labextension build . --core-package-file "$core" \
    > "$DIST/labextension-build.log" 2>&1 || { tail -n 30 "$DIST/labextension-build.log" >&2; exit 1; }
[ -f labextension/package.json ] || { echo "extension: the builder wrote no labextension/package.json" >&2; exit 1; }

log "building the wheel"
rm -rf "$DIST/tmp" build polartep_lab.egg-info
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps . -w "$DIST/tmp" >&2
mv "$DIST/tmp/$WHEEL_NAME" "$DIST/$WHEEL_NAME"
rm -rf "$DIST/tmp" build polartep_lab.egg-info
echo "$hash" > "$DIST/source-hash"
log "built $DIST/$WHEEL_NAME in $((SECONDS - started)) s"
echo "$DIST/$WHEEL_NAME"
