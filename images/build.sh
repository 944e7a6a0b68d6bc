#!/usr/bin/env bash
# Build Polar TEP's single-user images, offline-capable, on a Docker engine with no registry:
#
#   polartep/rootfs:bookworm   Debian bookworm from Debian's packages (debootstrap --variant=minbase), `docker import`ed
#   polartep/base              images/base: Python venv (jupyterhub 6.1.1, JupyterLab, Voila, xarray, Dask, ...)
#                              and the Polar TEP JupyterLab extension (the wheel extensions/build.sh builds here);
#                              the dashboard servers' program (hub/dashboards/serve.py) and its Voila launcher
#                              (hub/kernel_replies.py) at /opt/polartep/
#                              and a downstream patch to jupyterhub (images/base/patches/README.md)
#   polartep/ml                images/ml: base + PyTorch CPU wheel
#
# Usage: images/build.sh [base|ml ...]   (default: all; ml builds base first)
#
# Guarantees:
#   * Each image is tagged twice: NAME:<content hash> and the catalogue's plain NAME (:latest). The hash covers the
#     image's Dockerfile, requirements.txt and every file copied into it (notebooks/ and the extension's sources for
#     base), and for ml the base image's hash, so a change anywhere rebuilds exactly what depends on it.
#   * Idempotent and fast: when NAME:<hash> exists nothing is built (seconds). The debootstrap tarball and the
#     wheelhouses are cached under build/images/ (git-ignored), keyed by what produced them.
#   * Python packages come only from a wheelhouse downloaded on the host (`pip download` for Python 3.11.2 and
#     manylinux), installed with `pip install --no-index`: nothing inside `docker build` touches the network, which
#     here has no container registry and whose TLS certificate containers do not trust.
#   * Superseded NAME:<hash> tags are removed after a build, so old layers do not pile up.
#   * Concurrent calls wait for each other instead of building twice, across checkouts too: the lock
#     (${POLARTEP_IMAGE_LOCK:-/tmp/polartep-images.lock}) is per engine, not per checkout, because the tags are the
#     engine's (one checkout's removal of superseded tags untagged the base another was building ml FROM).
#   * The images run as the unprivileged user jovyan (uid 1000, home /home/jovyan).
# Prints each image's size at the end.
set -eo pipefail
set -u

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
CACHE="${POLARTEP_IMAGE_CACHE:-$ROOT/build/images}"
ROOTFS_IMAGE=polartep/rootfs:bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# pip only downloads here (for the image's Python); the repo's venv has one when `make install` ran.
if [ -z "${PIP:-}" ]; then
    PIP="$ROOT/.venv/bin/pip"
    [ -x "$PIP" ] || PIP="$(command -v pip3 || command -v pip)"
fi
# The image's Python (bookworm's python3); pip must choose wheels for it, not for the host's Python.
TARGET_PY=3.11.2
export DOCKER_BUILDKIT=0  # the classic builder: docker.io 20.10 ships no buildx, and it is all we need

mkdir -p "$CACHE"
# One build at a time on this engine (make test, a test fixture and other checkouts may all ask for the images).
exec 8>"${POLARTEP_IMAGE_LOCK:-/tmp/polartep-images.lock}"
flock 8
log() { echo "images: $*" >&2; }

hash_of() {  # stable sha256 (12 hex) over the given files and folders' contents and paths
    (cd "$ROOT" && find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

rootfs() {
    image_exists "$ROOTFS_IMAGE" && return
    local tarball="$CACHE/rootfs-bookworm.tar"
    if [ ! -s "$tarball" ]; then
        local dir="$CACHE/rootfs-bookworm"
        rm -rf "$dir"
        log "debootstrap bookworm (minbase) from $MIRROR"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
        # Drop the apt lists and caches: the image never runs apt.
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
        tar -C "$dir" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$dir"
    fi
    log "importing $ROOTFS_IMAGE"
    docker import "$tarball" "$ROOTFS_IMAGE" >/dev/null
}

wheelhouse() {  # $1 = image name; prints the wheelhouse folder for its requirements
    local req="$HERE/$1/requirements.txt"
    local dir="$CACHE/wheels-$1-$(hash_of "images/$1/requirements.txt")"
    if [ ! -f "$dir/.complete" ]; then
        log "downloading wheels for $1 into $dir"
        mkdir -p "$dir"
        "$PIP" download --quiet --disable-pip-version-check --only-binary=:all: --python-version "$TARGET_PY" \
            --implementation cp --abi cp311 --abi abi3 --abi none \
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
            --platform any -d "$dir" -r "$req" 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
        touch "$dir/.complete"
    fi
    echo "$dir"
}

build() {  # $1 = image name, $2 = content hash, then extra docker build args
    local name=$1 hash=$2
    shift 2
    local tag="polartep/$name:$hash"
    if image_exists "$tag"; then
        log "polartep/$name is up to date ($tag)"
    else
        local wheels ctx="$CACHE/context-$name"
        wheels="$(wheelhouse "$name")"
        rm -rf "$ctx" && mkdir -p "$ctx"
        cp "$HERE/$name/Dockerfile" "$HERE/$name/requirements.txt" "$ctx/"
        cp -al "$wheels" "$ctx/wheels" 2>/dev/null || cp -a "$wheels" "$ctx/wheels"
        if [ "$name" = base ]; then
            cp -a "$ROOT/notebooks" "$ctx/notebooks"
            cp -a "$HERE/base/patches" "$ctx/patches"
            cp "$ROOT/hub/dashboards/serve.py" "$ctx/dashboard_serve.py"
            cp "$ROOT/hub/kernel_replies.py" "$ctx/kernel_replies.py"
            mkdir -p "$ctx/extension" && cp "$(extension_wheel)" "$ctx/extension/"
        fi
        log "building $tag"
        local started=$SECONDS
        docker build --quiet --label "org.polartep.content-hash=$hash" -t "$tag" "$@" "$ctx" 2>&1 >/dev/null \
            | grep -vE "DEPRECATED|BuildKit|environment-variable|^ *$" >&2 || true
        image_exists "$tag" || { echo "images: building $tag failed" >&2; exit 1; }
        log "built $tag in $((SECONDS - started)) s"
        rm -rf "$ctx"
    fi
    docker tag "$tag" "polartep/$name:latest"
    # Older content-hash tags of this image are superseded: untag them so their layers can be reclaimed.
    docker image ls "polartep/$name" --format '{{.Tag}}' | { grep -vx -e latest -e "$hash" || true; } \
        | while read -r old; do docker rmi "polartep/$name:$old" >/dev/null 2>&1 || true; done
}

# The JupyterLab extension's wheel (extensions/build.sh: built here from its sources, never downloaded).
extension_wheel() { PYTHON="$(dirname "$PIP")/python" "$ROOT/extensions/build.sh"; }

base_hash() {
    (hash_of images/base/Dockerfile images/base/requirements.txt images/base/patches notebooks hub/dashboards/serve.py hub/kernel_replies.py; "$ROOT/extensions/build.sh" --hash) \
        | sha256sum | cut -c1-12
}

build_base() {
    rootfs
    build base "$(base_hash)" --build-arg "ROOTFS=$ROOTFS_IMAGE"
}

build_ml() {
    build_base
    local base_tag="polartep/base:$(base_hash)"
    local hash
    hash="$( (echo "$base_tag"; cd "$ROOT" && cat images/ml/Dockerfile images/ml/requirements.txt) | sha256sum | cut -c1-12)"
    build ml "$hash" --build-arg "BASE=$base_tag"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(base ml)
for target in "${targets[@]}"; do
    case "$target" in
        base) build_base ;;
        ml) build_ml ;;
        *) echo "unknown image $target (known: base ml)" >&2; exit 2 ;;
    esac
done

docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^polartep/(base|ml):latest' | sort \
    | while IFS=$'\t' read -r image size; do log "$image $size"; done
