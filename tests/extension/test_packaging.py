"""The extension is built from its sources into one wheel, and that wheel is what the venv has installed.

Specification: ``build/extension``'s wheel (``extensions/build.sh``) was built from today's sources (its recorded
source hash is the sources' hash), holds the prebuilt JupyterLab plugin under
``share/jupyter/labextensions/polartep-lab`` and the server-extension switch under
``etc/jupyter/jupyter_server_config.d``; the venv's files are the wheel's; ``jupyter labextension list`` and
``jupyter server extension list`` show both parts enabled and OK.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from polartep_hub.settings import REPO_ROOT

DIST = REPO_ROOT / "build" / "extension"
WHEEL = DIST / "polartep_lab-0.1.0-py3-none-any.whl"
DATA = "polartep_lab-0.1.0.data/data/"
LAB = "share/jupyter/labextensions/polartep-lab/"
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter(*args: str) -> str:
    done = subprocess.run([str(BIN / "jupyter"), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return ANSI.sub("", done.stdout + done.stderr)


def test_the_wheel_is_built_from_todays_sources():
    hashed = subprocess.run(
        [str(REPO_ROOT / "extensions" / "build.sh"), "--hash"], capture_output=True, text=True, check=True
    )
    assert (DIST / "source-hash").read_text().strip() == hashed.stdout.strip(), "run make install"


def test_the_wheel_ships_the_prebuilt_plugin_and_the_server_switch():
    with zipfile.ZipFile(WHEEL) as wheel:
        names = set(wheel.namelist())
        plugin = json.loads(wheel.read(DATA + LAB + "package.json"))
        switch = json.loads(wheel.read(DATA + "etc/jupyter/jupyter_server_config.d/polartep_lab.json"))
    source = json.loads((REPO_ROOT / "extensions" / "package.json").read_text())
    assert (plugin["name"], plugin["version"]) == (source["name"], source["version"])
    remote_entry = plugin["jupyterlab"]["_build"]["load"]
    assert DATA + LAB + remote_entry in names
    assert {"polartep_lab/__init__.py", "polartep_lab/handlers.py", "polartep_lab/client.py"} <= names
    assert switch == {"ServerApp": {"jpserver_extensions": {"polartep_lab": True}}}


def test_the_venv_has_the_wheels_files():
    prefix = Path(sys.prefix)
    with zipfile.ZipFile(WHEEL) as wheel:
        for name in wheel.namelist():
            if name.startswith(DATA):
                assert (prefix / name[len(DATA) :]).read_bytes() == wheel.read(name), name


def test_jupyter_lists_both_parts_enabled():
    assert re.search(
        r"^\s+polartep-lab v0\.1\.0 enabled OK \(python, polartep-lab\)$",
        jupyter("labextension", "list"),
        re.M,
    )
    servers = jupyter("server", "extension", "list")
    assert re.search(r"^\s+polartep_lab enabled$", servers, re.M)
    assert re.search(r"^\s+polartep_lab 0\.1\.0 OK$", servers, re.M)
