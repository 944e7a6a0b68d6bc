#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io (and debootstrap, which the image
# build needs) when missing, start dockerd in the background when it is not running, and wait until `docker info`
# works.
#
# Guarantees:
#   * idempotent and quick when the engine already runs (one `docker info`);
#   * safe when two checkouts call it at once: an flock serialises the install and the start, so only one dockerd
#     is ever started for the machine's single /var/run/docker.sock;
#   * exits non-zero with the reason (and the tail of dockerd's log) when the engine cannot start.
# Nothing starts dockerd at boot on these machines, so `make test` and `make up MODE=docker` call this first.
set -euo pipefail

LOCK=/var/lock/polartep-docker-engine.lock
LOG=/var/log/polartep-dockerd.log
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers && command -v debootstrap >/dev/null; then
    exit 0
fi

exec 9>"$LOCK"
flock 9  # another checkout may be installing or starting the engine right now

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "ensure-docker: installing docker.io and debootstrap from Debian's packages" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! engine_answers; then
    echo "ensure-docker: starting dockerd in the background (log: $LOG)" >&2
    # setsid: the engine must outlive the make/pytest process that happened to start it.
    $SUDO setsid dockerd >>"$LOG" 2>&1 < /dev/null &
    for _ in $(seq 1 120); do
        engine_answers && break
        sleep 0.5
    done
fi

if ! engine_answers; then
    echo "ensure-docker: the Docker engine did not come up within 60 s; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
fi
echo "ensure-docker: $(docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})')" >&2
