"""A pre-imported launcher for local-mode user servers: fork after the imports, then become the user.

Why: most of a single-user server's start is Python importing Jupyter Server, JupyterLab, JupyterHub's
single-user extension (which pulls in SQLAlchemy, Alembic and aiohttp) and the server extensions; every spawn
paid it again, and ten spawns at once paid it ten times on shared cores. The launcher imports all of that once, in
a process of its own, and forks one child per spawn; the child drops to the user's system user and runs
``jupyterhub-singleuser``'s ``main()`` with the spawn's arguments and environment.

Security argument (each point is checked by ``tests/security/test_launcher_isolation.py``):

* **Nothing of the platform's in the parent.** The launcher is a fresh interpreter started by the hub with
  ``python -I`` (no user site-packages, no ``PYTHON*`` variables, no current folder on ``sys.path``), in ``/``, with
  an environment of only ``PATH``, the locale and ``HOME=/nonexistent``: no platform secret (tokens, cookie
  secret, passwords, the service's URL) is ever in its environment or memory. It reads no file of ``state/`` and
  opens no database. It imports only code from the platform's own environment (owned by root), never from a
  user's folder.
* **No user's data in the parent either.** The parent receives nothing but "fork now" and the read end of a pipe
  (``SCM_RIGHTS``). Everything about the spawn (system user, groups, home, memory limit, datasets, argv, and the
  environment with the server's own API token) is written by the hub into that pipe and read only by the forked
  child. So a child, whose memory is a copy of the parent's, holds no other user's token, name or paths.
* **Who can ask.** The only channel is an ``AF_UNIX`` socket pair created by the hub; the parent's end is passed
  to the launcher and nowhere else (non-inheritable in the hub; closed in every child before it runs user code).
  There is no listening socket or file to connect to. The launcher runs as root; users cannot signal or trace it.
  It exits when the hub's end closes (the hub ended), so it never outlives its hub.
* **Becoming the user, in the child, before any user input is read or run:** a new session (``setsid``), every
  inherited descriptor but the pipe closed, signal dispositions reset, then ``setgroups`` (the system user's own
  groups plus the dataset groups the service granted), ``setgid``, ``setuid`` -- in that order, since after
  ``setuid`` the others are no longer permitted. The child then checks that real, effective and saved uid and gid
  are the user's and that ``setuid(0)`` fails; otherwise it exits without running anything. Only then: the
  environment is rebuilt from scratch (``os.environ`` cleared, the spawn's environment set), the home becomes the
  working folder, umask 077, the address-space limit, dataset links (as the user), the user's own site-packages
  as a normal start would add them, and JupyterHub's single-user ``main()``.
* A forked child that changed its uid is not "dumpable": the user's other processes cannot ``ptrace`` it or read
  its ``/proc/<pid>/mem``. This is stricter than an ``exec``'d server, and harmless (the user's kernels are
  ``exec``'d as usual).

What it does not change, and residual differences from ``exec``: all user servers share the launcher's memory
layout (ASLR offsets) and Python's ``str`` hash seed, so learning one's own tells a user those of other users'
servers; this matters only to a memory-corruption or hash-flooding attack on another user's server, which the
user can reach only through the hub's authentication (the servers answer unauthenticated requests with a redirect).
``random``'s global generator is re-seeded in every child by CPython itself (``os.register_at_fork``). Modules the
parent imported read environment variables at import time only where listed in ``IMPORT_TIME_VARIABLES``; the
spawner uses the launcher only when the spawn's environment leaves those as the launcher had them
(``fits_launcher``). ``/proc/<pid>/cmdline`` and ``environ`` of a child show the server's own (``_show_in_proc``).

Protocol: ``SOCK_SEQPACKET`` messages. Launcher -> hub once: ``{"ready": true}``. Hub -> launcher per spawn:
``b"spawn"`` with one descriptor (the pipe's read end); answer ``{"pid": N}`` or ``{"error": "..."}``. The child reads
the spec, a JSON object, from the pipe until end of file. Children's exits are reaped by the kernel (``SIGCHLD``
ignored in the parent); the hub follows a server by its pid, as JupyterHub does after a hub restart.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

# What a spawned single-user server imports; the parent imports each one it can before forking.
PREIMPORTS: tuple[str, ...] = (
    "jupyter_server.serverapp",
    "jupyterhub.singleuser",
    "jupyterhub.singleuser.extension",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyter_lsp",
    "jupyter_server_proxy",
    "jupyter_server_terminals",
    "notebook_shim",
    "voila.server_extension",
    "polartep_lab",
    "polartep_hub.spawners.dataset_mounts",
)

# Variables that a pre-imported module reads when imported (not when used), with the values that mean what the
# launcher had (unset): a spawn whose environment says otherwise must not use the launcher (``fits_launcher``).
IMPORT_TIME_VARIABLES: dict[str, frozenset[str]] = {
    "JUPYTERHUB_SINGLEUSER_EXTENSION": frozenset({""}),
    "JUPYTERHUB_SINGLEUSER_APP": frozenset({""}),
    "JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS": frozenset({"", "1"}),
}


def fits_launcher(env: dict[str, str]) -> bool:
    """Whether a server with environment ``env`` behaves the same forked from the launcher as started afresh."""
    return all(env.get(name, "") in same for name, same in IMPORT_TIME_VARIABLES.items())


_MESSAGE_SIZE = 4096


class LauncherError(RuntimeError):
    """The launcher could not start a server (the spawner then starts it the ordinary way)."""


# The launcher process ------------------------------------------------------------------------------------------


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancillary, _flags, _address = sock.recvmsg(_MESSAGE_SIZE, socket.CMSG_LEN(fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _drop_privileges(uid: int, gid: int, groups: Sequence[int]) -> None:
    """setgroups, setgid, setuid; then prove that none of root's ids is left and root cannot be regained."""
    if uid == 0 or gid == 0 or 0 in groups:
        raise PermissionError("the launcher starts servers only as unprivileged system users")
    os.setgroups(list(groups))
    os.setgid(gid)
    os.setuid(uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PermissionError(f"ids after the switch: {os.getresuid()} {os.getresgid()}")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PermissionError("setuid(0) succeeded after dropping privileges")
    if sorted(os.getgroups()) != sorted(set(groups)):
        raise PermissionError(f"groups after the switch: {os.getgroups()}")


# Room for the server's argv and environment in the launcher's own exec-time areas (see _show_in_proc).
ARGV_ROOM = 8192
ENV_ROOM = 65536
ROOM_VARIABLE = "POLARTEP_LAUNCHER_ROOM"


def _show_in_proc(argv: Sequence[str], env: dict[str, str]) -> None:
    """Make ``/proc/<pid>/cmdline`` and ``environ`` show the server's argv and environment, not the launcher's.

    The kernel shows the memory ranges that the launcher's ``exec`` filled; a forked child keeps them. The launcher
    is started with blank room in both (``ARGV_ROOM``, ``ENV_ROOM``), so the child writes its own there, in its own
    copy of the memory, NUL-padded (``ps`` may show the padding as trailing blanks). Called after ``os.environ``
    was rebuilt, so that nothing in the C library still points into the old environment area. Where a value does
    not fit, that file keeps showing the launcher's (never a secret)."""
    import ctypes

    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    # Fields 48-51 of stat (1-based, counted from the pid): arg_start, arg_end, env_start, env_end.
    arg_start, arg_end, env_start, env_end = (int(value) for value in fields[45:49])
    blocks = (
        (arg_start, arg_end, b"".join(arg.encode() + b"\0" for arg in argv)),
        (env_start, env_end, b"".join(f"{key}={value}".encode() + b"\0" for key, value in env.items())),
    )
    for start, end, block in blocks:
        room = end - start
        if len(block) > room:
            print(f"launcher: {len(block)} bytes do not fit the {room} in /proc's view", file=sys.stderr)
            continue
        ctypes.memmove(start, block, len(block))
        ctypes.memset(start + len(block), 0, room - len(block))


def _become_server(control: socket.socket, spec_fd: int) -> None:
    """In the forked child: become the user and run the single-user server. Never returns."""
    # Default dispositions: the parent ignores SIGCHLD (and a server must see its kernels' exits).
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    control.close()
    os.closerange(3, spec_fd)
    os.closerange(spec_fd + 1, os.sysconf("SC_OPEN_MAX"))
    spec = json.loads(_read_all(spec_fd))
    os.close(spec_fd)

    env = {str(k): str(v) for k, v in spec["env"].items()}
    argv = [str(arg) for arg in spec["argv"]]

    _drop_privileges(int(spec["uid"]), int(spec["gid"]), [int(g) for g in spec["groups"]])

    os.environ.clear()
    os.environ.update(env)
    _show_in_proc(argv, env)
    home = spec["home"]
    os.chdir(home)
    os.umask(0o077)
    if spec.get("memory_limit"):
        import resource

        limit = int(spec["memory_limit"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from polartep_hub.spawners.dataset_mounts import DatasetMount, link_datasets

    link_datasets(home, [DatasetMount.from_json(m) for m in spec.get("mounts", [])], spec.get("roots", []))

    # What the interpreter's start would have added for this user (the launcher ran with -I).
    import site

    site.ENABLE_USER_SITE = True
    site.USER_BASE = None
    site.USER_SITE = None
    site.addusersitepackages(None)

    sys.argv = argv
    from jupyterhub.singleuser import main

    main()


def _child(control: socket.socket, spec_fd: int) -> None:
    code = 0
    try:
        _become_server(control, spec_fd)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # Never return into the launcher's loop; run the exit handlers a normal exit would.
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(control_fd: int) -> None:
    """The launcher's loop: import, say ready, then fork one child per request until the hub's end closes."""
    control = socket.socket(fileno=control_fd)
    failed = []
    for name in PREIMPORTS:
        try:
            __import__(name)
        except Exception as error:  # an optional extension missing: the child imports what it needs itself
            failed.append(f"{name}: {error}")
    if threading.active_count() != 1:
        # Forking a process with threads can leave locks held in the child: refuse, the hub falls back.
        control.send(json.dumps({"error": f"{threading.active_count()} threads after the imports"}).encode())
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the servers
    control.send(json.dumps({"ready": True, "not_imported": failed}).encode())
    while True:
        try:
            data, fds = _receive(control)
        except InterruptedError:
            continue
        if not data:
            return  # the hub's end closed
        if data != b"spawn" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"error": "expected b'spawn' and one descriptor"}).encode())
            continue
        try:
            pid = os.fork()
        except OSError as error:
            os.close(fds[0])
            control.send(json.dumps({"error": f"fork: {error}"}).encode())
            continue
        if pid == 0:
            _child(control, fds[0])
        os.close(fds[0])
        control.send(json.dumps({"pid": pid}).encode())


# The hub's side ----------------------------------------------------------------------------------------------


class LaunchedServer:
    """What a spawner keeps of a server the launcher started: enough of ``Popen`` for ``LocalProcessSpawner``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process exists; 0 once it is gone (its parent, the launcher, reaps it)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
        return self.returncode

    def __enter__(self) -> LaunchedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Launcher:
    """The hub's handle on one launcher process: started on first use, one request at a time."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._starting: asyncio.Task | None = None
        self.failure = ""

    @property
    def ready(self) -> bool:
        return self._socket is not None and self._process is not None and self._process.poll() is None

    def _start_blocking(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/nonexistent",
            ROOM_VARIABLE: " " * ENV_ROOM,
        }
        for name in ("LANG", "LC_ALL"):
            if name in os.environ:
                env[name] = os.environ[name]
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-m",
                    "polartep_hub.spawners.launcher",
                    str(theirs.fileno()),
                    " " * ARGV_ROOM,
                ],
                pass_fds=[theirs.fileno()],
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.settimeout(300)
        try:
            answer = json.loads(ours.recv(_MESSAGE_SIZE) or b"{}")
        except (OSError, ValueError) as error:
            answer = {"error": str(error)}
        if not answer.get("ready"):
            process.kill()
            process.wait()
            ours.close()
            raise LauncherError(f"the launcher did not start: {answer.get('error', 'no answer')}")
        if answer.get("not_imported"):
            log.info("Launcher started without %s", "; ".join(answer["not_imported"]))
        ours.settimeout(60)
        self._process, self._socket = process, ours

    async def start(self) -> None:
        """Start the launcher (once; concurrent callers wait for the same start)."""
        if self.ready:
            return
        if self.failure:
            raise LauncherError(
                self.failure
            )  # once is enough: no spawn waits for a launcher that cannot start
        if self._starting is None or self._starting.done():
            loop = asyncio.get_running_loop()
            self._starting = asyncio.ensure_future(loop.run_in_executor(None, self._start_blocking))
        try:
            await asyncio.shield(self._starting)
        except LauncherError as error:
            self.failure = str(error)
            raise

    def start_in_background(self) -> None:
        """Begin starting the launcher without waiting (a failure is kept in ``failure``)."""
        if self.ready or (self._starting is not None and not self._starting.done()):
            return

        async def start() -> None:
            try:
                await self.start()
            except Exception as error:
                log.warning("Local servers start without the pre-imported launcher: %s", error)

        asyncio.ensure_future(start())

    def _spawn_blocking(self, spec: dict) -> int:
        read_end, write_end = os.pipe()
        payload = json.dumps(spec).encode()
        with self._lock:
            if not self.ready:
                os.close(read_end)
                os.close(write_end)
                raise LauncherError("the launcher is not running")
            try:
                self._socket.sendmsg(
                    [b"spawn"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [read_end]))]
                )
            except OSError as error:  # the launcher ended: the next spawn starts a new one
                os.close(write_end)
                self._socket.close()
                self._socket = None
                raise LauncherError(f"the launcher is gone: {error}") from error
            finally:
                os.close(read_end)
            try:
                answer = json.loads(self._socket.recv(_MESSAGE_SIZE) or b"{}")
            except (OSError, ValueError) as error:
                os.close(write_end)
                self._socket.close()
                self._socket = None
                raise LauncherError(f"no answer from the launcher: {error}") from error
        # Only the child reads this (the launcher closed its copy of the read end after the fork).
        try:
            view = memoryview(payload)
            while view:
                written = os.write(write_end, view)
                view = view[written:]
        except BrokenPipeError:
            pass  # the child died before reading; the spawner sees it gone
        finally:
            os.close(write_end)
        if "pid" not in answer:
            raise LauncherError(answer.get("error", "no pid in the launcher's answer"))
        return int(answer["pid"])

    async def spawn(self, spec: dict) -> LaunchedServer:
        """Fork a server from the launcher with ``spec`` (uid, gid, groups, home, env, argv, memory_limit, mounts,
        roots); the returned handle follows it by pid."""
        loop = asyncio.get_running_loop()
        pid = await loop.run_in_executor(None, self._spawn_blocking, spec)
        return LaunchedServer(pid)

    def stop(self) -> None:
        """End the launcher (the servers it started keep running)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None


_shared: Launcher | None = None


def shared_launcher() -> Launcher:
    """The hub's one launcher."""
    global _shared
    if _shared is None:
        _shared = Launcher()
    return _shared


if __name__ == "__main__":
    if os.geteuid() != 0:
        # Children could not become other users; nor should anyone else run this as a service.
        sys.exit("the launcher runs as root, started by the hub")
    serve(int(sys.argv[1]))
