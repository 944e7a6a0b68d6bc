"""Executes runs on the invoker's Dask Gateway cluster, and finds every unfinished run again after a restart.

A run is driven by one thread of the platform service (``RunExecutor``): it makes a short-lived JupyterHub token of
the invoker scoped to the gateway alone, connects to (or creates) the invoker's run cluster with it, submits
``run_task.execute_run`` to a worker and waits for the result; the worker runs papermill as the invoker.

Rules this module guarantees:

* **The invoker's cluster, the invoker's identity.** The gateway knows the run only as the invoker's: the token is
  created for the invoker with exactly ``access:services!service=dask-gateway`` and an expiry (the run's timeout
  plus a margin), kept in memory only; its id is committed on the run so that it is revoked at the end, also by a
  reconciliation after a crash. The cluster is created with the processor's profile (in Docker mode that profile's
  image), so the gateway's plan bounds and quota admission (``gateway/quota_allowance.py``) decide whether it may
  start: a refused cluster fails the run with the gateway's message, and the run is charged only through its
  cluster's metered intervals, like any cluster.
* **Warm run clusters.** A run cluster of an invoker and profile is reused by the next run; it is stopped
  ``processor_run_warm_seconds`` after its last run ended (its warm time is metered like any cluster's). A cluster
  that the service lost track of (restart) is stopped by the gateway's own idle timeout.
* **Never lost, never twice.** States are committed before their steps (``runs.py``). A run left ``accepted`` or
  ``running`` by a dead service is driven again by the reconciliation (at start and every ``RECONCILE_SECONDS``):
  a run whose worker began (its ``started`` marker) is waited for until its ``status.json`` appears;
  otherwise its task is submitted again, and the worker's ``started`` marker (``run_task.py``) makes a second
  execution answer the recorded status (or "interrupted") instead of running the notebook twice. A run whose
  cluster is gone is finished from the ``status.json`` it left in the invoker's run folder, or failed.
* **Nothing from a user's cluster is unpickled** (``refuse_unpickling``): users control their clusters' schedulers,
  and distributed's client unpickles what a scheduler sends. The run's end comes as plain data (an event, or
  ``status.json`` read without following links, ``run_files.py``), checked for shape.
* **Turns.** At most ``RUNS_DRIVEN_AT_ONCE`` runs of one invoker and profile are driven at once (their run cluster's
  worker runs one at a time); the others stay ``accepted`` and wait in their thread without a token or connection
  (cancelling one dismisses it at once), so a burst of submissions does not load the service with idle drivers.
* **Cancel** sets the run's ``distributed.Event``; the worker kills the kernel and records ``dismissed``. The request
  is committed first (the run's message), so a driver that takes over after a restart sets the event again.
* **Timeouts**: the worker stops the kernel at the run's timeout; the driver gives up waiting
  ``TIMEOUT_GRACE_SECONDS`` later (a worker that died), asks for a stop and fails the run.
* **Progress and logs** arrive as worker events (``run_task.topic_of``): progress is committed on the run (cells
  done / total) at most every ``PROGRESS_COMMIT_SECONDS``; log lines are kept in memory for the live log and the
  worker also writes ``run.log`` in the run folder, which is the record. Chosen over polling files because the
  service reads a Docker-mode home volume only through a short-lived container (``run_files.DockerRunFiles``, about
  a second a read), and over a stream of its own because the worker's comm to the scheduler is already
  authenticated and encrypted (TLS) by the gateway.
* **Docker mode**: the worker is a container of the processor's profile image with the invoker's home volume at
  ``/home/jovyan`` (``gateway/backends/docker.py``), so the run folder is ``~/processor-runs/<id>/`` in that volume;
  the API reads it through the engine (``run_files.py``), and so does a restarted service: a run whose worker began
  (its ``started`` marker in the volume) is waited for until its ``status.json`` appears there, as in local mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import cloudpickle

from polartep_hub import kernel_replies
from polartep_hub.gateway.config import GATEWAY_SERVICE_NAME
from polartep_hub.processors import run_files, run_task, runs
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.hub_api import HubAPI, HubApiError

# Workers need not have the platform's package: the task's module travels with it (see ByValue), and so does the
# patch it installs (standard library and jupyter_client only).
cloudpickle.register_pickle_by_value(run_task)
cloudpickle.register_pickle_by_value(kernel_replies)


class ByValue:
    """A callable that pickles as its function *by value*, wherever it sits in what is pickled.

    distributed pickles a submitted task as one object (its task-spec wrapper) with the standard pickler, which
    writes a function by reference (``polartep_hub.processors.run_task.execute_run``), and uses cloudpickle's
    by-value mode only when the top-level object's module is registered. Schedulers and workers in Docker mode run
    the catalogue image, which has no ``polartep_hub``: they could not even read the graph. ``__reduce__`` makes any
    pickler write ``cloudpickle.loads(<the function by value>)`` instead, which every image can read.
    """

    def __init__(self, function) -> None:
        self.function = function
        self.__name__ = getattr(function, "__name__", "task")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __reduce__(self):
        return cloudpickle.loads, (cloudpickle.dumps(self.function),)


log = logging.getLogger(__name__)

RECONCILE_SECONDS = 30.0
TIMEOUT_GRACE_SECONDS = 120.0
TOKEN_MARGIN_SECONDS = 900
WORKER_WAIT_SECONDS = 180.0
PROGRESS_COMMIT_SECONDS = 0.5
CANCEL_REQUESTED = "cancel requested"
LOG_LINES_KEPT = 5000
# Runs of one invoker and profile driven at once; the others wait for a turn holding nothing but their thread (no
# hub token, no gateway or Dask connection). A run cluster has one single-threaded worker, so a second driver only
# keeps the next run ready on it; twenty drivers each made a hub token, a gateway client and a Dask client (about
# 40 ms of the service's CPU and 20 ms of the hub's per run) at once, which slowed every request of the service.
RUNS_DRIVEN_AT_ONCE = 2


def run_key(run_id: str) -> str:
    """The task key of a run on its cluster's scheduler (stable, so a restarted service finds the task)."""
    return f"processor-run-{run_id}"


def _refused_unpickling(*args: Any, **kwargs: Any) -> Any:
    raise RunFailed("the platform service does not unpickle data from a user's cluster")


def refuse_unpickling() -> None:
    """Make this process's Dask client refuse every pickle that comes from a cluster.

    The service is a Dask client of *users'* clusters, whose schedulers the users control (they connect to them
    too); distributed's client unpickles what a scheduler sends (``__Pickled__`` frames, pickled results and
    errors), which would let a user run code in the platform service. The service needs none of it: the run's end
    comes as a plain-data event and as ``status.json``. This process uses Dask for nothing else.
    """
    import distributed.protocol.pickle as dask_pickle

    dask_pickle.loads = _refused_unpickling


class RunFailed(Exception):
    """The run cannot go on; the message is the run's."""


class RunExecutor:
    """Drives runs in threads of this process; one per run, started by ``start`` or the reconciliation."""

    def __init__(self, config: ServiceConfig, sessions, hub_api: HubAPI, reader_image: str = "") -> None:
        self.config = config
        # Docker mode: run files are read from the invoker's home volume through the engine (run_files.py).
        self.docker_files = (
            run_files.DockerRunFiles(reader_image)
            if config.mode in ("docker", "swarm") and reader_image
            else None
        )
        self.sessions = sessions
        self.hub_api = hub_api
        self.store = NotebookStore(Path(config.processors_dir or ".") / "notebooks")
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._clients: dict[str, Any] = {}
        self._logs: dict[str, deque[str]] = {}
        self._cluster_locks: dict[tuple[str, str], threading.Lock] = {}
        # (invoker, profile) -> the turns of its runs' drivers (RUNS_DRIVEN_AT_ONCE)
        self._turns: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        # (invoker, cluster name) -> (profile, monotonic time its last run ended; None while a run uses it)
        self._warm: dict[tuple[str, str], tuple[str, float | None]] = {}
        self._finals: dict[str, dict[str, Any]] = {}
        # Set when a run's final event arrives or its task ends, so its driver stops waiting at once.
        self._ended: dict[str, threading.Event] = {}
        refuse_unpickling()

    # --- where a run's files are ----------------------------------------------------------------------------------

    def home_of(self, invoker: str) -> str | None:
        """The invoker's home as the platform knows it (local mode), else None (the worker's own ``~``)."""
        if self.config.mode != "local" or not self.config.homes_root:
            return None
        return str(Path(self.config.homes_root) / self.config.home_folder(invoker))

    def read_run_file(
        self, invoker: str, run_id: str, relative: str, limit: int = run_files.MAX_FILE_BYTES
    ) -> bytes:
        """The bytes of a file of the invoker's run (``run_files.py``: no links, plain files of the home's owner);
        ``RunFileUnavailable`` when there is none or this mode cannot read it."""
        home = self.home_of(invoker)
        if home is not None:
            return run_files.read_run_file(home, run_id, relative, limit)
        if self.docker_files is not None:
            from polartep_hub.spawners.home_volume import home_volume_name

            volume = home_volume_name(self.config.home_folder(invoker))
            return self.docker_files.read_run_file(volume, run_id, relative, limit)
        raise runs.RunFileUnavailable(
            f"the run's files are in the invoker's home, ~/{run_task.RUNS_FOLDER}/{run_id}/ (open them in JupyterLab)"
        )

    def _started(self, invoker: str, run_id: str) -> bool:
        """Whether a worker began the run (its ``started`` marker in the invoker's run folder, either mode)."""
        try:
            self.read_run_file(invoker, run_id, run_task.STARTED_FILE, 0)
        except runs.RunFileUnavailable:
            return False
        return True

    def recorded_status(self, invoker: str, run_id: str) -> dict[str, Any] | None:
        """The run's ``status.json`` in the invoker's home (either mode), None when there is none (yet)."""
        try:
            data = self.read_run_file(invoker, run_id, run_task.STATUS_FILE, run_files.MAX_STATUS_BYTES)
        except runs.RunFileUnavailable:
            return None
        return run_files.status_from(data)

    def run_folder(self, invoker: str, run_id: str) -> Path | None:
        home = self.home_of(invoker)
        return Path(home) / run_task.RUNS_FOLDER / run_id if home else None

    def live_log(self, run_id: str) -> list[str] | None:
        with self._lock:
            lines = self._logs.get(run_id)
            return list(lines) if lines is not None else None

    # --- starting, cancelling -------------------------------------------------------------------------------------

    def start(self, run_id: str) -> bool:
        """Drive ``run_id`` in a thread unless one drives it already; True if this call started one."""
        with self._lock:
            thread = self._threads.get(run_id)
            if thread is not None and thread.is_alive():
                return False
            thread = threading.Thread(target=self._drive, args=(run_id,), name=f"run-{run_id}", daemon=True)
            self._threads[run_id] = thread
            self._logs.setdefault(run_id, deque(maxlen=LOG_LINES_KEPT))
        thread.start()
        return True

    def is_driving(self, run_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(run_id)
            return thread is not None and thread.is_alive()

    def cancel(self, run_id: str) -> None:
        """Ask a running run to stop (the request is already committed by the caller)."""
        with self._lock:
            client = self._clients.get(run_id)
        if client is not None:
            self._set_cancel_event(client, run_id)

    @staticmethod
    def _set_cancel_event(client, run_id: str) -> None:
        from distributed import Event

        try:
            Event(run_task.cancel_event_name(run_id), client=client).set()
        except Exception:  # noqa: BLE001 (the reconciliation or the timeout still ends it)
            log.warning("could not signal the cancel of run %s", run_id, exc_info=True)

    # --- the driver -----------------------------------------------------------------------------------------------

    def _drive(self, run_id: str) -> None:
        try:
            self._drive_once(run_id)
        except Exception:  # noqa: BLE001 (a driver never dies silently: the reconciliation picks the run up)
            log.exception("driving run %s failed; the reconciliation will try again", run_id)

    def _drive_once(self, run_id: str) -> None:
        """Wait for a turn among the runs of the same invoker and profile (``RUNS_DRIVEN_AT_ONCE``), then drive."""
        with self.sessions() as session:
            plan = runs.plan_of(session, run_id)
        if plan is None or plan.status not in runs.ACTIVE_STATES:
            return
        with self._lock:
            turns = self._turns.setdefault(
                (plan.invoker, plan.profile), threading.BoundedSemaphore(RUNS_DRIVEN_AT_ONCE)
            )
        with turns:
            self._drive_in_turn(run_id)

    def _drive_in_turn(self, run_id: str) -> None:
        # Read again: the run may have been dismissed (cancel of an accepted run) while it waited for its turn.
        with self.sessions() as session:
            plan = runs.plan_of(session, run_id)
        if plan is None or plan.status not in runs.ACTIVE_STATES:
            return
        if plan.token_id:  # left by a driver that died: revoke it before making a new one
            self._revoke(plan.invoker, plan.token_id)
        try:
            token_id, token = self.hub_api.create_token(
                plan.invoker,
                scopes=[f"access:services!service={GATEWAY_SERVICE_NAME}"],
                expires_in=plan.timeout_seconds + TOKEN_MARGIN_SECONDS,
                note=f"processor run {run_id}",
            )
        except HubApiError as error:
            log.warning("no token for run %s: %s", run_id, error)
            return  # JupyterHub is away: the reconciliation tries again
        with self.sessions() as session:
            runs.set_token_id(session, run_id, token_id)
        cluster_name: str | None = None
        try:
            cluster_name = self._execute(plan, token)
        except RunFailed as failure:
            with self.sessions() as session:
                runs.finish(session, run_id, "failed", str(failure))
        finally:
            self._revoke(plan.invoker, token_id)
            with self.sessions() as session:
                runs.set_token_id(session, run_id, None)
            with self._lock:
                self._clients.pop(run_id, None)
                self._ended.pop(run_id, None)
                if cluster_name and (plan.invoker, cluster_name) in self._warm:
                    self._warm[(plan.invoker, cluster_name)] = (plan.profile, time.monotonic())

    def _revoke(self, invoker: str, token_id: str) -> None:
        try:
            self.hub_api.revoke_token(invoker, token_id)
        except HubApiError as error:
            # It expires on its own (its expiry bounds it); say so, the token itself is never logged.
            log.warning("could not revoke token %s of %s: %s", token_id, invoker, error)

    def _gateway(self, token: str):
        from dask_gateway import Gateway, JupyterHubAuth

        return Gateway(
            address=self.config.gateway_url,
            proxy_address=self.config.gateway_proxy_address,
            auth=JupyterHubAuth(api_token=token),
        )

    def _execute(self, plan: runs.RunPlan, token: str) -> str | None:
        """Run (or re-attach to) the task of ``plan`` and record its end; the cluster's name."""
        from distributed import fire_and_forget

        gateway = self._gateway(token)
        client = None
        try:
            cluster = self._cluster_for(gateway, plan)
            if cluster is None:
                self._finish_without_cluster(plan)
                return None
            with self.sessions() as session:
                if not runs.set_running(session, plan.run_id, cluster.name):
                    return cluster.name  # dismissed while the cluster started
            client = cluster.get_client(set_as_default=False)
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except Exception:  # noqa: BLE001
                raise RunFailed(
                    "no worker could start on the run cluster within "
                    f"{WORKER_WAIT_SECONDS:g} s (the plan's quota or the machine's capacity); try again later"
                ) from None
            with self._lock:
                self._clients[plan.run_id] = client
            client.subscribe_topic(run_task.topic_of(plan.run_id), self._event_handler(plan.run_id))
            key = run_key(plan.run_id)
            home = self.home_of(plan.invoker)
            # A task a dead driver submitted may still run: its started marker is seen (either mode) and its status
            # waited for; otherwise the task is submitted (again) and the worker's marker keeps it from running twice.
            attached = plan.status == "running" and self._started(plan.invoker, plan.run_id)
            future = None
            if not attached:
                notebook = self.store.read(plan.notebook_sha256)
                future = client.submit(
                    ByValue(run_task.execute_run),
                    plan.run_id,
                    notebook,
                    plan.inputs,
                    plan.timeout_seconds,
                    plan.outputs,
                    home,
                    key=key,
                    pure=False,
                    retries=0,
                )
                # The task finishes even if this service dies meanwhile (its status.json is the record).
                fire_and_forget(future)
            if self._cancel_was_requested(plan.run_id):
                self._set_cancel_event(client, plan.run_id)
            result = self._wait_for_end(plan, future, home)
            self._finish_from(plan.run_id, result)
            return cluster.name
        finally:
            if client is not None:
                try:
                    client.unsubscribe_topic(run_task.topic_of(plan.run_id))
                except Exception:  # noqa: BLE001
                    pass
                client.close()
            gateway.close()

    def _wait_for_end(self, plan: runs.RunPlan, future, home: str | None) -> dict[str, Any]:
        """The run's final status: its ``final`` event, or its ``status.json``; never the task's pickled
        result, which this process refuses to unpickle (``refuse_unpickling``)."""
        deadline = time.monotonic() + plan.timeout_seconds + TIMEOUT_GRACE_SECONDS
        next_volume_read = 0.0
        ended = self._ended_event(plan.run_id)
        if future is not None:
            # Called in a thread of the client when the task ends: only wakes this loop, reads nothing of it.
            future.add_done_callback(lambda _: ended.set())
        while time.monotonic() < deadline:
            ended.clear()
            with self._lock:
                final = self._finals.pop(plan.run_id, None)
            if final is None and home is not None:
                final = run_files.read_status(home, plan.run_id)
            elif final is None and future is None and self.docker_files is not None:
                # Docker mode, the task done but its final event missed (or a re-attached run): status.json from
                # the invoker's volume, read through the engine, so not at every turn.
                if time.monotonic() >= next_volume_read:
                    next_volume_read = time.monotonic() + 5.0
                    final = self.recorded_status(plan.invoker, plan.run_id)
            if final is not None:
                return final
            if future is not None:
                if not future.done():
                    # Woken by the final event or the task's end; half a second at most, for status.json and the
                    # deadline. (A fixed 0.5 s sleep here added 0.25 s on average to every run.)
                    ended.wait(0.5)
                    continue
                if future.status != "finished":
                    raise RunFailed(f"the run's task ended on the worker as {future.status!r}; see its log")
                future = None  # done: its final event or status.json arrives within a moment
                deadline = min(deadline, time.monotonic() + 10.0)
            else:
                ended.wait(0.5)
        with self._lock:
            client = self._clients.get(plan.run_id)
        if client is not None:
            self._set_cancel_event(client, plan.run_id)
        raise RunFailed(
            f"the run ended without a recorded status, or passed its timeout of {plan.timeout_seconds} s and its "
            "worker did not answer"
        )

    def _ended_event(self, run_id: str) -> threading.Event:
        with self._lock:
            return self._ended.setdefault(run_id, threading.Event())

    def _cancel_was_requested(self, run_id: str) -> bool:
        from polartep_hub.processors.models import ProcessorRun

        with self.sessions() as session:
            run = session.get(ProcessorRun, run_id)
            return run is not None and run.message == CANCEL_REQUESTED

    def _finish_from(self, run_id: str, result: dict[str, Any]) -> None:
        # Written by the invoker's own worker: trusted for the invoker's own run only, and checked for shape.
        import json

        if not isinstance(result, dict):
            result = {"status": "failed", "message": "the run recorded a malformed status"}
        results = result.get("results")
        if results is not None and (not isinstance(results, dict) or len(json.dumps(results)) > 1_000_000):
            result = {
                "status": "failed",
                "message": "the run's value outputs are not a JSON object within 1 MB",
            }
        status = result.get("status")
        if status not in ("successful", "failed", "dismissed"):
            status, message = "failed", f"the run ended in an unknown state {str(status)[:40]!r}"
        else:
            message = str(result.get("message") or "")
        with self.sessions() as session:
            runs.finish(
                session,
                run_id,
                status,
                message,
                result.get("results") if isinstance(result.get("results"), dict) else None,
                cells_done=_count(result.get("cells_done")),
                cells_total=_count(result.get("cells_total")),
            )

    def _finish_without_cluster(self, plan: runs.RunPlan) -> None:
        """A ``running`` run whose cluster is gone: finish it from its run folder, or fail it (never run again)."""
        recorded = self.recorded_status(plan.invoker, plan.run_id)
        if recorded is not None:
            self._finish_from(plan.run_id, recorded)
            return
        with self.sessions() as session:
            runs.finish(
                session,
                plan.run_id,
                "failed",
                "the run's cluster stopped before the run recorded its end; it is not repeated",
            )

    def _cluster_for(self, gateway, plan: runs.RunPlan):
        """The cluster to run on: the run's own (re-attach), a warm run cluster of the invoker and profile, or a new
        one. None when a ``running`` run's cluster is gone."""
        running = {
            report.name: report
            for report in gateway.list_clusters()
            if getattr(report.status, "name", str(report.status)) in ("RUNNING", "PENDING")
        }
        if plan.status == "running" and plan.cluster_name:
            if plan.cluster_name not in running:
                return None
            return gateway.connect(plan.cluster_name, shutdown_on_close=False)
        key = (plan.invoker, plan.profile)
        with self._lock:
            lock = self._cluster_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                warm = [
                    name
                    for (invoker, name), (profile, _) in self._warm.items()
                    if invoker == plan.invoker and profile == plan.profile and name in running
                ]
            if not warm:
                warm = self._recorded_run_clusters(plan, running)
            if warm:
                with self._lock:
                    self._warm[(plan.invoker, warm[0])] = (plan.profile, None)
                return gateway.connect(warm[0], shutdown_on_close=False)
            try:
                cluster = gateway.new_cluster(profile=plan.profile, shutdown_on_close=False)
            except Exception as error:  # noqa: BLE001 (the gateway's refusal is the run's message)
                raise RunFailed(f"the run cluster could not start: {_gateway_message(error)}") from None
            with self._lock:
                self._warm[(plan.invoker, cluster.name)] = (plan.profile, None)
            try:
                cluster.scale(1)
            except Exception as error:  # noqa: BLE001
                raise RunFailed(
                    f"the run cluster could not get a worker: {_gateway_message(error)}"
                ) from None
            return cluster

    def _recorded_run_clusters(self, plan: runs.RunPlan, running: dict[str, Any]) -> list[str]:
        """Run clusters of earlier runs of the invoker with this profile that still run (after a restart)."""
        from sqlalchemy import select

        from polartep_hub.accounts.models import Account
        from polartep_hub.processors.models import ProcessorRun

        with self.sessions() as session:
            names = session.scalars(
                select(ProcessorRun.cluster_name)
                .join(Account, Account.id == ProcessorRun.invoker_id)
                .where(Account.name == plan.invoker, ProcessorRun.cluster_name.is_not(None))
                .order_by(ProcessorRun.created_at.desc())
                .limit(20)
            ).all()
        found = []
        for name in dict.fromkeys(names):
            report = running.get(name)
            if report is not None and (report.options or {}).get("profile") == plan.profile:
                found.append(name)
        return found

    def _event_handler(self, run_id: str):
        last_commit = [0.0]

        def handle(event) -> None:
            _, message = event
            if not isinstance(message, dict):
                return
            lines = message.get("log")
            if isinstance(lines, list):
                with self._lock:
                    buffer = self._logs.setdefault(run_id, deque(maxlen=LOG_LINES_KEPT))
                    buffer.extend(str(line)[:2000] for line in lines)
            final = message.get("final")
            if isinstance(final, dict):
                with self._lock:
                    self._finals[run_id] = final
                    ended = self._ended.get(run_id)
                if ended is not None:
                    ended.set()
            if "cells_done" in message and "final" not in message:
                now = time.monotonic()
                if now - last_commit[0] >= PROGRESS_COMMIT_SECONDS:
                    last_commit[0] = now
                    with self.sessions() as session:
                        runs.set_progress(
                            session, run_id, int(message["cells_done"]), int(message.get("cells_total") or 0)
                        )

        return handle

    # --- reconciliation and warm clusters -------------------------------------------------------------------------

    def reconcile_once(self) -> list[str]:
        """Drive every unfinished run that no thread of this process drives; the runs started."""
        with self.sessions() as session:
            unfinished = runs.active_run_ids(session)
        return [run_id for run_id in unfinished if self.start(run_id)]

    def stop_cold_clusters(self) -> list[str]:
        """Stop run clusters whose last run ended more than ``processor_run_warm_seconds`` ago."""
        now = time.monotonic()
        with self._lock:
            cold = [
                (invoker, name)
                for (invoker, name), (_, ended) in self._warm.items()
                if ended is not None and now - ended >= self.config.processor_run_warm_seconds
            ]
        stopped = []
        for invoker, name in cold:
            with self._lock:
                profile, ended = self._warm.get((invoker, name), ("", None))
                if ended is None:
                    continue  # a new run took it meanwhile
                del self._warm[(invoker, name)]
            try:
                token_id, token = self.hub_api.create_token(
                    invoker,
                    scopes=[f"access:services!service={GATEWAY_SERVICE_NAME}"],
                    expires_in=300,
                    note="stop a warm processor-run cluster",
                )
            except HubApiError:
                continue  # the gateway's idle timeout stops it
            try:
                gateway = self._gateway(token)
                try:
                    gateway.stop_cluster(name)
                    stopped.append(name)
                finally:
                    gateway.close()
            except Exception:  # noqa: BLE001
                log.warning("could not stop warm run cluster %s of %s", name, invoker, exc_info=True)
            finally:
                self._revoke(invoker, token_id)
        return stopped

    async def run_forever(self) -> None:
        """The reconciliation loop: at start, then every ``RECONCILE_SECONDS`` (and warm clusters checked every few
        seconds)."""
        next_reconcile = 0.0
        while True:
            try:
                if time.monotonic() >= next_reconcile:
                    started = await asyncio.to_thread(self.reconcile_once)
                    if started:
                        log.info("reconciliation drives runs %s", ", ".join(started))
                    next_reconcile = time.monotonic() + RECONCILE_SECONDS
                await asyncio.to_thread(self.stop_cold_clusters)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("processor-run reconciliation failed; trying again")
            await asyncio.sleep(min(5.0, max(1.0, self.config.processor_run_warm_seconds / 4)))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else 0


def _gateway_message(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:1000]
