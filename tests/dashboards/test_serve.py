"""The dashboard program's proxy notices its program listening at once (hub/dashboards/serve.py, ``poll_briskly``).

Measured against a real process supervised by simpervisor, as jupyter-server-proxy supervises Voila: the process binds
its port after a delay that simpervisor's doubling back-off (checks at 0.01, 0.03, 0.07, ... 2.55, 5.11 s) would
notice only at 5.1 s.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import time
from pathlib import Path

from jupyter_server_proxy.handlers import SuperviseAndProxyHandler
from simpervisor import SupervisedProcess

from polartep_hub.dashboards.serve import READY_CHECK_SECONDS, briskly_ready, poll_briskly

LISTEN_AFTER = 2.7  # just past simpervisor's check at 2.55 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def port_accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def late_listener(port: int, bound_file: Path, delay: float) -> list[str]:
    code = textwrap.dedent(
        f"""
        import socket, time
        time.sleep({delay})
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", {port}))
        s.listen()
        open({str(bound_file)!r}, "w").write(repr(time.time()))
        time.sleep(60)
        """
    )
    return [sys.executable, "-c", code]


async def supervised(command: list[str], ready) -> SupervisedProcess:
    process = SupervisedProcess("late", *command, ready_func=ready, ready_timeout=30)
    await process.start()
    return process


def test_a_program_that_binds_late_is_noticed_within_a_tenth_of_a_second(tmp_path):
    port, bound_file = free_port(), tmp_path / "bound"

    async def scenario() -> float:
        process = await supervised(
            late_listener(port, bound_file, LISTEN_AFTER),
            lambda p: poll_briskly(lambda _: port_accepts(port), p),
        )
        try:
            assert await process.ready()
            return time.time() - float(bound_file.read_text())
        finally:
            await process.kill()

    assert asyncio.run(scenario()) < 0.1


def test_a_program_that_ends_before_it_listens_ends_the_check_at_once():
    async def scenario() -> tuple[bool, float]:
        process = await supervised([sys.executable, "-c", "import time; time.sleep(0.3)"], None)
        started = time.monotonic()
        ready = await poll_briskly(lambda _: port_accepts(free_port()), process)
        return ready, time.monotonic() - started

    ready, waited = asyncio.run(scenario())
    assert ready is False
    assert waited < 1.0


def test_a_program_that_never_listens_fails_one_check_after_its_limit():
    async def scenario() -> tuple[bool, float]:
        process = await supervised([sys.executable, "-c", "import time; time.sleep(60)"], None)
        try:
            started = time.monotonic()
            ready = await poll_briskly(lambda _: port_accepts(free_port()), process)
            return ready, time.monotonic() - started
        finally:
            await process.kill()

    ready, waited = asyncio.run(scenario())
    assert ready is False
    assert READY_CHECK_SECONDS <= waited < READY_CHECK_SECONDS + 1


def test_the_proxy_handler_polls_its_own_readiness_check_briskly():
    calls: list[object] = []

    class Counting(SuperviseAndProxyHandler):
        async def _http_ready_func(self, p):
            calls.append(p)
            return len(calls) >= 3

    class Process:
        returncode = None

    handler_instance = object.__new__(briskly_ready(Counting))
    started = time.monotonic()
    assert asyncio.run(handler_instance._http_ready_func(Process())) is True
    assert len(calls) == 3
    assert time.monotonic() - started < 0.5
