"""Shared by several test modules (moved from ``tests/docker/test_home_volumes.py``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.docker.engine import container_name, docker, inspect
from tests.harness import RunningPlatform


def containers(**labels: str) -> list[dict]:
    """``docker inspect`` of every container (running or not) carrying all of ``labels``."""
    args = ["ps", "-aq"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    ids = docker(*args).stdout.split()
    return [inspect("container", i) for i in ids if inspect("container", i)]


def exec_in_server(user: str, code: str, timeout: float = 180) -> dict:
    """Run ``code`` with the Python of the user's server container, as the server runs (its env, its token)."""
    done = docker(
        "exec", container_name(user), "python", "-c", textwrap.dedent(code), check=False, timeout=timeout
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_docker_platform(
    root: Path, catalogue: Path, idle_timeout: int = 0, mode: str = "docker"
) -> RunningPlatform:
    running = RunningPlatform(
        root,
        mode=mode,
        extra_env={"POLARTEP_CATALOGUE": str(catalogue), "POLARTEP_IDLE_TIMEOUT": str(idle_timeout)},
    )
    try:
        return running.start()
    except Exception:
        print(running.log_tail())
        running.stop()
        raise
