"""The guard against lost ZeroMQ wake-ups (wslbench.runner.zmq_wakeup) and who installs it.

The scenario is built deterministically: a reply lands on a DEALER socket while an
asyncio ``get_msg`` waits, and its edge on ``ZMQ_FD`` is consumed behind asyncio's back
(a plain shadow socket reads ``EVENTS``), which is what a concurrent send did to
Voila's shell channel under load.
"""

from __future__ import annotations

import asyncio
import json
import time
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from wslbench.runner import _papermill_child, zmq_wakeup
from wslbench.runner.voila import voila_argv
from wslbench.runner.zmq_wakeup import guarded_get_msg, install_wakeup_guard


async def _reply_with_lost_wakeup(get_msg, wait_s: float) -> dict | None:  # noqa: ANN001
    """Send a request, let the reply land with its wake-up consumed; what ``get_msg`` returns
    within ``wait_s`` (``None``: nothing, the wait hangs)."""
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    session = Session()
    channel = AsyncZMQSocketChannel(dealer, session)
    try:
        session.send(dealer, "kernel_info_request", {})
        identity, *_ = await router.recv_multipart()
        waiting = asyncio.ensure_future(get_msg(channel))
        await asyncio.sleep(0.2)  # the poll is registered on the socket's fd
        session.send(router, "kernel_info_reply", {"status": "ok"}, ident=identity)
        time.sleep(0.2)  # the reply arrives while the event loop is busy
        assert zmq.Socket.shadow(dealer.underlying).get(zmq.EVENTS) & zmq.POLLIN  # edge consumed
        try:
            return await asyncio.wait_for(waiting, wait_s)
        except TimeoutError:
            return None
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        ctx.term()


def test_unguarded_wait_misses_the_waiting_reply() -> None:
    """The upstream behaviour the guard exists for (if this starts passing, the guard can go)."""
    original = AsyncZMQSocketChannel.get_msg
    assert original is not guarded_get_msg, "a test left the guard installed in this process"
    assert asyncio.run(_reply_with_lost_wakeup(lambda ch: original(ch), 2.0)) is None


def test_guarded_wait_receives_the_reply_within_a_slice() -> None:
    start = time.monotonic()
    msg = asyncio.run(_reply_with_lost_wakeup(lambda ch: guarded_get_msg(ch), 5.0))
    assert msg is not None and msg["header"]["msg_type"] == "kernel_info_reply"
    assert msg["content"] == {"status": "ok"}
    assert time.monotonic() - start < 0.4 + 2 * zmq_wakeup.SLICE_S + 1.0


def test_guarded_wait_keeps_the_timeout_contract() -> None:
    async def no_reply() -> float:
        ctx = zmq.asyncio.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect("tcp://127.0.0.1:9")  # nobody answers
        channel = AsyncZMQSocketChannel(dealer, Session())
        start = time.monotonic()
        try:
            with pytest.raises(Empty):
                await guarded_get_msg(channel, timeout=0.3)
            return time.monotonic() - start
        finally:
            dealer.close(linger=0)
            ctx.term()

    assert 0.29 <= asyncio.run(no_reply()) < 1.5


def test_install_replaces_the_channel_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)
    install_wakeup_guard()
    install_wakeup_guard()
    assert AsyncZMQSocketChannel.get_msg is guarded_get_msg


def test_dashboards_run_voila_through_the_guarded_entry_point(tmp_path) -> None:  # noqa: ANN001
    argv = voila_argv(tmp_path)
    assert argv[1:3] == ["-m", "wslbench.runner.voila_main"]


def test_papermill_runs_install_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)
    seen: list[object] = []
    monkeypatch.setattr(_papermill_child.papermill, "execute_notebook",
                        lambda *a, **k: seen.append(AsyncZMQSocketChannel.get_msg))
    spec = {"input": "in.ipynb", "output": "out.ipynb", "parameters": {}, "cwd": ".",
            "kernel_name": "python3", "timeout": None}
    assert _papermill_child.main([json.dumps(spec)]) == 0
    assert seen == [guarded_get_msg]
