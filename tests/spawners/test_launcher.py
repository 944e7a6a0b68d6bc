"""The pre-imported launcher's own rules (``hub/spawners/launcher.py``), checked on a real launcher process as root.

The attacks from inside a real user server are in ``tests/security/test_launcher_isolation.py``; here: which spawns
may use it, that a child asked to stay root refuses before it runs anything, and that a dead launcher is reported
as a ``LauncherError`` (the spawner then starts the server as a new process) rather than failing the spawn.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from polartep_hub.spawners.launcher import Launcher, LauncherError, fits_launcher
from tests.harness import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the launcher runs as root")


def test_only_spawns_that_behave_the_same_forked_use_the_launcher():
    assert fits_launcher({}) is True
    assert fits_launcher({"JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS": "1"}) is True
    assert fits_launcher({"JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS": "0"}) is False
    assert fits_launcher({"JUPYTERHUB_SINGLEUSER_APP": "notebook"}) is False
    assert fits_launcher({"JUPYTERHUB_SINGLEUSER_EXTENSION": "1"}) is False


def test_a_child_refuses_to_run_as_root_and_a_dead_launcher_is_a_launcher_error(capfd):
    async def scenario() -> None:
        launcher = Launcher()
        await launcher.start()
        try:
            spec = {
                "uid": 0,
                "gid": 0,
                "groups": [0],
                "home": "/",
                "env": {},
                "argv": ["jupyterhub-singleuser"],
            }
            server = await launcher.spawn(spec)
            wait_for(lambda: server.poll() is not None, 60, what="the child to refuse and exit")
            launcher._process.kill()
            launcher._process.wait()
            with pytest.raises(LauncherError, match="not running|gone"):
                await launcher.spawn(spec)
        finally:
            launcher.stop()

    asyncio.run(scenario())
    assert "the launcher starts servers only as unprivileged system users" in capfd.readouterr().err
