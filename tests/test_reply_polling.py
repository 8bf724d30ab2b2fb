"""_ext/reply_polling.py: waiting for a cell's reply in short polls (jupyter/nbclient#312)."""

import asyncio
import sys
import time
from pathlib import Path
from queue import Empty

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))

import reply_polling  # noqa: E402


class FakeChannel:
    """A shell channel whose message arrives ``arrives_after`` seconds from now."""

    def __init__(self, arrives_after):
        self.arrival = time.monotonic() + arrives_after
        self.timeouts = []

    async def get_msg(self, timeout=None):
        self.timeouts.append(timeout)
        wait = self.arrival - time.monotonic()
        if timeout is not None and wait > timeout:
            await asyncio.sleep(timeout)
            raise Empty
        await asyncio.sleep(max(wait, 0))
        return {"msg": "reply"}


def test_polls_in_short_waits_until_the_message_comes():
    channel = FakeChannel(arrives_after=0.25)
    get_msg = reply_polling.polling_get_msg(channel.get_msg, poll_s=0.05)
    assert asyncio.run(get_msg(timeout=None)) == {"msg": "reply"}
    assert len(channel.timeouts) >= 4 and max(channel.timeouts) <= 0.05


def test_keeps_the_deadline_and_raises_empty_at_it():
    channel = FakeChannel(arrives_after=10)
    get_msg = reply_polling.polling_get_msg(channel.get_msg, poll_s=0.05)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(get_msg(timeout=0.2))
    assert 0.2 <= time.monotonic() - start < 1.0


def test_a_plain_function_works_too():
    calls = []

    def get_msg(timeout=None):
        calls.append(timeout)
        if len(calls) < 3:
            raise Empty
        return "reply"

    assert asyncio.run(reply_polling.polling_get_msg(get_msg, poll_s=0.01)(timeout=5)) == "reply"
    assert len(calls) == 3


def test_install_is_idempotent_and_wraps_the_shell_channel():
    from nbclient import NotebookClient

    reply_polling.install()
    first = NotebookClient.async_start_new_kernel_client
    reply_polling.install()
    assert NotebookClient.async_start_new_kernel_client is first
    assert getattr(first, "_course_polling", False)
