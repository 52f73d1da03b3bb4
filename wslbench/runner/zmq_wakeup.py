"""Level-triggered waits on jupyter_client's asyncio channels (a guard against lost ZeroMQ wake-ups).

nbclient (under Voila and papermill) waits for each ``execute_reply`` with
``await shell_channel.get_msg(timeout=None)``: a ``zmq.asyncio`` poll on the socket's
edge-triggered ``ZMQ_FD``. If that edge is consumed elsewhere while the reply arrives,
the poll never wakes although the reply sits in the socket. On a loaded 2-core machine
this stalled Voila pages at "Executing 4 of 6" with the kernel idle (stop 16: 10 of 17
loaded page loads; the reply was waiting, the socket's ``EVENTS`` had ``POLLIN``);
the symptom is reported upstream as voila-dashboards/voila#1395, the kernel side of the
same libzmq corollary as ipython/ipykernel#1554.

:func:`install_wakeup_guard` makes the wait level-triggered: it polls in slices of
:data:`SLICE_S` and, between slices, asks the socket itself whether a message is waiting.
"""

from __future__ import annotations

import time
import typing as t
from queue import Empty

import zmq

__all__ = ["SLICE_S", "guarded_get_msg", "install_wakeup_guard"]

#: Longest a waiting message can go unnoticed, seconds.
SLICE_S = 0.5


async def guarded_get_msg(self: t.Any, timeout: float | None = None) -> dict[str, t.Any]:
    """``AsyncZMQSocketChannel.get_msg`` that also notices a message whose wake-up was lost.

    Same contract as jupyter_client's: the next message, or :class:`queue.Empty` once
    ``timeout`` seconds (``None``: no limit) have passed without one.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE_S if deadline is None else max(0.0, min(SLICE_S, deadline - time.monotonic()))
        if await self.socket.poll(int(left * 1000)) or self.socket.get(zmq.EVENTS) & zmq.POLLIN:
            return await self._recv()
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty


def install_wakeup_guard() -> None:
    """Replace jupyter_client's asyncio ``get_msg`` by :func:`guarded_get_msg` (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    AsyncZMQSocketChannel.get_msg = guarded_get_msg  # type: ignore[method-assign]

