"""The part of a processor run that executes inside a Dask worker of the invoker's cluster (as the invoker).

``execute_run`` is submitted by the platform service (``execution.py``) and pickled *by value* (this module needs
only the standard library, papermill and distributed, which every catalogue image has, and ``kernel_replies``, pickled
by value too), so workers need not have the platform's package. It runs papermill in the worker process: the kernel is a child of the worker, so it runs as
the invoker's system user in local mode and in the invoker's container in Docker mode, never as the platform.

Rules this module guarantees:

* **Never twice.** The run folder ``<home>/processor-runs/<run id>/`` gets ``started`` (created exclusively) before
  papermill starts. A second execution of the same run (a retried task, a reconciliation that submits again) finds
  it and does not execute the notebook: it answers the recorded final status, or ``failed`` ("interrupted") when the
  first execution died without one.
* **One final marker.** ``status.json`` is written atomically (temporary file, fsync, rename) as the task's last
  step; the service finishes the run from it even when it was not there to receive the task's result.
* **Parameters are the validated dict only**, passed to ``papermill.execute_notebook(parameters=dict)`` (never a
  string: papermill reads a string as a YAML path).
* **Cancel and timeout stop the kernel**: the task's own thread watches the run's cancel event
  (``distributed.Event("processor-run-cancel-<id>")``) and its deadline, and kills the kernel's whole process group
  (SIGKILL), so a kernel that sleeps or ignores interrupts is gone within a second or two.
* **Plain data only goes back**: the task returns nothing; its final status is published as a worker event of
  plain JSON types, which the service reads without unpickling (``execution.refuse_unpickling``).
* **Progress and logs are streamed** as worker events on topic ``processor-run-<id>`` (``{"cells_done",
  "cells_total"}`` and ``{"log": [lines]}``), which the service subscribes to; the kernel's output also goes to
  ``run.log`` in the run folder, which stays the record.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from polartep_hub.kernel_replies import install as install_kernel_replies

RUNS_FOLDER = "processor-runs"
STATUS_FILE = "status.json"
STARTED_FILE = "started"
OUTPUT_NOTEBOOK = "output.ipynb"
INPUT_NOTEBOOK = "input.ipynb"
LOG_FILE = "run.log"
OUTPUTS_FILE = "outputs.json"
MAX_OUTPUTS_BYTES = 1_000_000
_LOG_CHUNK = 200  # lines per event at most


def topic_of(run_id: str) -> str:
    """The worker-event topic of a run's progress and log lines."""
    return f"processor-run-{run_id}"


def cancel_event_name(run_id: str) -> str:
    """The name of the ``distributed.Event`` that asks the run to stop."""
    return f"processor-run-cancel-{run_id}"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_status(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


class _LogSink:
    """A file-like object for papermill's ``stdout_file``/``stderr_file``: lines go to ``run.log`` and to the
    pending list the task thread streams."""

    def __init__(self, log_file, pending: list[str], lock: threading.Lock) -> None:
        self._file = log_file
        self._pending = pending
        self._lock = lock

    def write(self, text: str) -> int:
        with self._lock:
            self._file.write(text)
            self._file.flush()
            self._pending.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass


def _kernel_manager_class(holder: dict[str, Any]):
    from jupyter_client.manager import AsyncKernelManager, KernelManager

    class RecordingKernelManager(AsyncKernelManager):
        """Keeps itself in ``holder`` once its kernel started, so the task thread can kill the kernel."""

        async def start_kernel(self, **kw):  # type: ignore[override]
            await KernelManager._async_start_kernel(self, **kw)
            holder["km"] = self

    return RecordingKernelManager


def _kill_kernel(holder: dict[str, Any]) -> None:
    """SIGKILL the kernel's process group (its children too): a sleeping or stuck kernel cannot refuse."""
    km = holder.get("km")
    provisioner = getattr(km, "provisioner", None)
    pgid = getattr(provisioner, "pgid", None)
    pid = getattr(provisioner, "pid", None)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGKILL)
        elif pid:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _declared_results(folder: Path, outputs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Value outputs from ``outputs.json``, and the problems with missing declared outputs."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    wanted_values = [name for name, spec in outputs.items() if spec.get("type") == "value"]
    written: dict[str, Any] = {}
    path = folder / OUTPUTS_FILE
    if wanted_values:
        try:
            if path.is_symlink() or path.stat().st_size > MAX_OUTPUTS_BYTES:
                raise ValueError("outputs.json must be a plain file of at most 1 MB")
            written = json.loads(path.read_text())
            if not isinstance(written, dict):
                raise ValueError("outputs.json must hold a JSON object")
        except FileNotFoundError:
            problems.append("the notebook wrote no outputs.json")
        except (OSError, ValueError) as error:
            problems.append(str(error))
    for name in wanted_values:
        if name in written:
            values[name] = written[name]
        elif written:
            problems.append(f"outputs.json has no value {name!r}")
    for name, spec in outputs.items():
        if spec.get("type") == "file":
            target = folder / str(spec.get("path", ""))
            if not target.is_file() or target.is_symlink():
                problems.append(f"the notebook did not write the file {spec.get('path')!r} (output {name!r})")
    return values, problems


def execute_run(
    run_id: str,
    notebook: bytes,
    parameters: dict[str, Any],
    timeout_seconds: float,
    outputs: dict[str, Any],
    home: str | None = None,
) -> None:
    """Execute one run in this worker (see the module's rules). Returns nothing: the final status goes to
    ``status.json`` and, as plain data, to the run's event topic (``{"final": status}``), because the platform
    service never unpickles anything that comes from a user's cluster."""
    from distributed import get_worker

    try:
        status = _execute(run_id, notebook, parameters, timeout_seconds, outputs, home)
    except Exception as error:  # noqa: BLE001 (an erred task's exception would reach the service only pickled)
        status = {
            "status": "failed",
            "message": f"the run could not execute: {type(error).__name__}: {error}"[:2000],
        }
    get_worker().log_event(topic_of(run_id), {"final": status})


def _execute(
    run_id: str,
    notebook: bytes,
    parameters: dict[str, Any],
    timeout_seconds: float,
    outputs: dict[str, Any],
    home: str | None = None,
) -> dict[str, Any]:
    """The run's final status, written to ``status.json``; ``home``: the invoker's home as the platform knows it
    (local mode), ``~`` of the worker's account otherwise."""
    import papermill
    from distributed import Event, get_worker

    install_kernel_replies()  # papermill's wait for a reply could miss it until the run's timeout

    base = Path(home) if home else Path.home()
    runs = base / RUNS_FOLDER
    runs.mkdir(mode=0o700, exist_ok=True)
    folder = runs / run_id
    folder.mkdir(mode=0o700, exist_ok=True)
    recorded = _read_status(folder)
    if recorded is not None:
        return recorded
    try:
        os.close(os.open(folder / STARTED_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        status = {
            "status": "failed",
            "message": "the run was interrupted (its worker stopped) and is not repeated",
        }
        _write_atomically(folder / STATUS_FILE, json.dumps(status).encode())
        return status

    worker = get_worker()
    topic = topic_of(run_id)
    cancel = Event(cancel_event_name(run_id))
    (folder / INPUT_NOTEBOOK).write_bytes(notebook)
    holder: dict[str, Any] = {}
    progress = {"cells_done": 0, "cells_total": 0}
    pending: list[str] = []
    lock = threading.Lock()
    outcome: dict[str, Any] = {}

    def notebook_started(notebook=None, **_: Any) -> None:
        if notebook is not None:
            progress["cells_total"] = sum(
                1 for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()
            )

    def cell_executed(**_: Any) -> None:
        progress["cells_done"] += 1

    with open(folder / LOG_FILE, "a", encoding="utf-8") as log_file:
        sink = _LogSink(log_file, pending, lock)

        def execute() -> None:
            try:
                papermill.execute_notebook(
                    str(folder / INPUT_NOTEBOOK),
                    str(folder / OUTPUT_NOTEBOOK),
                    parameters=dict(parameters),
                    kernel_name="python3",
                    progress_bar=False,
                    log_output=False,
                    stdout_file=sink,
                    stderr_file=sink,
                    cwd=str(folder),
                    request_save_on_cell_execute=True,
                    kernel_manager_class=_kernel_manager_class(holder),
                    on_notebook_start=notebook_started,
                    on_cell_executed=cell_executed,
                )
                outcome["ok"] = True
            except BaseException as error:  # noqa: BLE001 (every failure becomes the run's message)
                outcome["error"] = f"{type(error).__name__}: {str(error)[:2000]}"

        thread = threading.Thread(target=execute, name=f"papermill-{run_id}", daemon=True)
        deadline = time.monotonic() + timeout_seconds
        thread.start()
        stopped_by: str | None = None
        sent = dict(progress)
        while thread.is_alive():
            thread.join(0.5)
            if stopped_by is None:
                if time.monotonic() > deadline:
                    stopped_by = "timeout"
                elif cancel.is_set():
                    stopped_by = "cancel"
                if stopped_by is not None:
                    sink.write(f"[platform] stopping the kernel ({stopped_by})\n")
                    _kill_kernel(holder)
                    if not holder.get("km"):
                        # Still starting: kill it as soon as it exists.
                        threading.Thread(
                            target=_kill_when_started, args=(holder, thread), daemon=True
                        ).start()
            with lock:
                lines, pending[:] = pending[:_LOG_CHUNK], pending[_LOG_CHUNK:]
            if lines:
                worker.log_event(topic, {"log": lines})
            if progress != sent:
                sent = dict(progress)
                worker.log_event(topic, dict(sent))
        with lock:
            lines, pending[:] = list(pending), []
        if lines:
            worker.log_event(topic, {"log": lines})

    if stopped_by == "cancel":
        status: dict[str, Any] = {"status": "dismissed", "message": "cancelled; the kernel was stopped"}
    elif stopped_by == "timeout":
        status = {
            "status": "failed",
            "message": f"the run passed its timeout of {timeout_seconds:g} s and was stopped",
        }
    elif "error" in outcome:
        status = {"status": "failed", "message": outcome["error"]}
    else:
        values, problems = _declared_results(folder, outputs)
        if problems:
            status = {"status": "failed", "message": "; ".join(problems), "results": values}
        else:
            status = {"status": "successful", "message": "", "results": values}
    status.update(progress)
    _write_atomically(folder / STATUS_FILE, json.dumps(status).encode())
    return status


def _kill_when_started(holder: dict[str, Any], thread: threading.Thread) -> None:
    while thread.is_alive() and not holder.get("km"):
        time.sleep(0.1)
    if thread.is_alive():
        _kill_kernel(holder)
