"""``wait_until_answering``: a spawner's ``start()`` returns as soon as its server answers, and at once when the
server died, so the hub's own first readiness check succeeds without its exponential back-off.

Real sockets on 127.0.0.1: a server that starts listening late, one that answers 503 first, and a server that never
comes while its process is already gone.
"""

from __future__ import annotations

import asyncio
import time

from polartep_hub.spawners.readiness import wait_until_answering
from tests.harness import free_port


async def serve(port: int, answers: list[int]) -> asyncio.AbstractServer:
    """A minimal HTTP server answering each request with the next status of ``answers`` (the last one repeats)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        code = answers.pop(0) if len(answers) > 1 else answers[0]
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_a_server_that_comes_up_late_is_noticed_within_a_poll():
    port = free_port()
    waiting = asyncio.ensure_future(wait_until_answering(f"http://127.0.0.1:{port}/user/a/api", within=30))
    await asyncio.sleep(0.8)  # the server is not there yet: refused connections, polled every 50 ms
    assert not waiting.done()
    server = await serve(port, [200])
    up_at = time.monotonic()
    try:
        assert await waiting is True
        # JupyterHub's back-off would be sleeping up to 0.8 s at this point; the poll notices within its interval.
        assert time.monotonic() - up_at < 0.5
    finally:
        server.close()


async def test_error_answers_are_not_ready():
    port = free_port()
    answers = [503, 503, 502, 200]
    server = await serve(port, answers)
    try:
        assert await wait_until_answering(f"http://127.0.0.1:{port}/api", within=30) is True
        assert answers == [200]  # every error answer was consumed before the wait ended
    finally:
        server.close()


async def test_a_server_that_died_ends_the_wait_at_once():
    port = free_port()
    checks = []

    def alive() -> bool:
        checks.append(time.monotonic())
        return len(checks) < 3  # the process ends after the second check

    started = time.monotonic()
    assert (
        await wait_until_answering(f"http://127.0.0.1:{port}/api", within=60, alive=alive, alive_every=0.1)
        is False
    )
    assert time.monotonic() - started < 2
    assert len(checks) == 3


async def test_an_async_liveness_check_is_awaited_and_kept_rarer_than_the_polls():
    port = free_port()
    checks = []

    async def alive() -> bool:
        checks.append(time.monotonic())
        return True

    assert (
        await wait_until_answering(f"http://127.0.0.1:{port}/api", within=1.0, alive=alive, alive_every=0.4)
        is False
    )
    # One check at once, then one every 0.4 s within the 1 s: never one per 50 ms poll.
    assert 2 <= len(checks) <= 3
