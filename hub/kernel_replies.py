"""Kernel replies that a notebook client is sure to notice: the asyncio channel's wait, in short slices.

Why: papermill (the processors' runs, the example notebooks) and Voila (dashboards) wait for a kernel's replies with
``jupyter_client``'s ``AsyncZMQSocketChannel.get_msg``, one ``zmq.asyncio`` poll for the whole timeout. On this
stack (jupyter_client 8.10, pyzmq 26-27, nbclient 0.11) that poll sometimes misses the wake-up of a reply that has
already arrived: the reply sits in the client's socket while the client sleeps until its timeout, when pyzmq's
final non-blocking check finds it. Measured on the results-dashboard example with ``python -m papermill`` (cell
limit 30 s): 3 of 10 runs had the widget cell wait the whole 30 s although the kernel had gone idle in 0.2 s, and a
probe inside papermill found the ``execute_reply`` waiting in the shell socket each time. Voila waits with no
timeout, so its page never finished. ipykernel 6 instead of 7, and pyzmq 26.4 instead of 27.3, made it rarer but not
gone (2 of 20, 1 of 20).

``install()`` makes ``get_msg`` wait in slices of ``SLICE_SECONDS``: each slice that ends without a wake-up checks the
socket once without waiting, so a missed reply is read within a slice instead of at the timeout (or never). The
patch changes nothing else: the same timeout, ``queue.Empty`` when it passes, the same receive.

Used as a launcher, ``python kernel_replies.py MODULE ARGS...`` (or ``-m polartep_hub.kernel_replies``) installs the
patch and runs ``python -m MODULE ARGS...`` in the same process: the dashboard servers run Voila this way
(``dashboards/serve.py``), the tests run papermill this way. The processors' runs call ``install()`` in the worker
(``processors/run_task.py``). Standard library and jupyter_client only: the images carry this file next to the
dashboard program.
"""

from __future__ import annotations

import runpy
import sys
import time
from queue import Empty
from typing import Any

SLICE_SECONDS = 0.5


def install() -> None:
    """Make ``AsyncZMQSocketChannel.get_msg`` wait in slices (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    if getattr(original, "sliced", False):
        return

    # The signature is jupyter_client's own (a timeout parameter is what its callers pass).
    async def get_msg(self: AsyncZMQSocketChannel, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """The next message; ``queue.Empty`` if none comes within ``timeout`` seconds (``None``: wait for one)."""
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = SLICE_SECONDS if left is None else min(SLICE_SECONDS, left)
            # A poll that times out ends with pyzmq's own non-blocking check, which sees a reply whose wake-up
            # was missed; a poll of 0 ms is that check alone.
            if await self.socket.poll(int(wait * 1000)):
                return await self._recv()
            if left is not None and left <= SLICE_SECONDS:
                raise Empty

    get_msg.sliced = True  # type: ignore[attr-defined]
    get_msg.original = original  # type: ignore[attr-defined]
    AsyncZMQSocketChannel.get_msg = get_msg  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    """``MODULE ARGS...``: install the patch, then run ``MODULE`` as ``python -m`` would, with ``ARGS``."""
    if not argv:
        raise SystemExit(
            "usage: kernel_replies.py MODULE [ARGS...]  (runs python -m MODULE ARGS with the patch)"
        )
    install()
    sys.argv = list(argv)  # run_module puts the module's path in argv[0]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
