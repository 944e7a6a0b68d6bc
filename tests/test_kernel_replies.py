"""A kernel's reply whose wake-up the client missed is still read, within one slice (``hub/kernel_replies.py``).

Specification:

* the missed wake-up is real: a reply that arrives while the client's event loop is busy, and whose socket signal
  someone consumes before the loop looks (here: a check of the socket's events, as libzmq's own sends do), is not
  noticed by jupyter_client's ``get_msg`` until its timeout;
* with ``install()``, the same reply is returned within ``SLICE_SECONDS`` (plus scheduling), the right message;
* the timeout and ``queue.Empty`` are kept: no message, ``Empty`` after the timeout, not before;
* as a launcher it runs ``python -m MODULE ARGS`` with the patch in place.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from polartep_hub import kernel_replies

TIMEOUT = 4.0  # seconds the client is willing to wait for the reply


@pytest.fixture
def unpatched(monkeypatch):
    current = AsyncZMQSocketChannel.get_msg
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", getattr(current, "original", current))


@pytest.fixture
def patched(unpatched):
    kernel_replies.install()
    assert AsyncZMQSocketChannel.get_msg.sliced


def wait_for_reply_with_missed_wakeup() -> tuple[dict | None, float]:
    """A client waits for a reply; the reply arrives while its loop is busy and its signal is consumed first.
    Returns (the message or None on Empty, seconds waited)."""

    async def scenario():
        context = zmq.asyncio.Context()
        address = f"inproc://replies-{time.monotonic_ns()}"
        client_socket = context.socket(zmq.PAIR)
        client_socket.bind(address)
        kernel = zmq.Context.shadow(context.underlying).socket(zmq.PAIR)
        kernel.connect(address)
        session = Session(key=b"")
        channel = AsyncZMQSocketChannel(client_socket, session)
        try:
            started = time.monotonic()
            waiting = asyncio.ensure_future(channel.get_msg(timeout=TIMEOUT))
            await asyncio.sleep(0.2)  # the client is now waiting on the socket's signal
            # The loop is busy (no await) while the reply arrives and its signal is consumed.
            session.send(kernel, "execute_reply", {"status": "ok"})
            time.sleep(0.2)  # noqa: ASYNC251 (blocking on purpose: the loop must not look while it arrives)
            zmq.Socket.shadow(client_socket.underlying).getsockopt(zmq.EVENTS)
            try:
                message = await waiting
            except Empty:
                message = None
            return message, time.monotonic() - started
        finally:
            kernel.close(linger=0)
            client_socket.close(linger=0)
            context.term()

    return asyncio.run(scenario())


def test_without_the_patch_a_reply_with_a_missed_wakeup_waits_for_the_timeout(unpatched):
    message, waited = wait_for_reply_with_missed_wakeup()
    assert message is not None and message["msg_type"] == "execute_reply"  # pyzmq's last check finds it...
    assert waited >= TIMEOUT - 0.1  # ...only at the timeout


def test_with_the_patch_the_same_reply_is_read_within_a_slice(patched):
    message, waited = wait_for_reply_with_missed_wakeup()
    assert message is not None
    assert message["msg_type"] == "execute_reply" and message["content"] == {"status": "ok"}
    assert waited < 0.2 + 0.2 + kernel_replies.SLICE_SECONDS + 0.5


def test_with_the_patch_no_message_is_empty_after_the_timeout_not_before(patched):
    async def wait_alone():
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.PAIR)
        socket.bind(f"inproc://alone-{time.monotonic_ns()}")
        channel = AsyncZMQSocketChannel(socket, Session(key=b""))
        started = time.monotonic()
        try:
            with pytest.raises(Empty):
                await channel.get_msg(timeout=1.2)
            return time.monotonic() - started
        finally:
            socket.close(linger=0)
            context.term()

    waited = asyncio.run(wait_alone())
    assert 1.2 - 0.05 <= waited < 1.2 + kernel_replies.SLICE_SECONDS


def test_install_is_idempotent(patched):
    first = AsyncZMQSocketChannel.get_msg
    kernel_replies.install()
    assert AsyncZMQSocketChannel.get_msg is first


def test_the_launcher_runs_a_module_with_the_patch_installed(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import sys\n"
        "from jupyter_client.channels import AsyncZMQSocketChannel\n"
        "print(getattr(AsyncZMQSocketChannel.get_msg, 'sliced', False), sys.argv[1:])\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "polartep_hub.kernel_replies", "probe", "--flag", "value"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ['--flag', 'value']"
