"""Wait for a cell's reply in short polls, so that a missed wake-up cannot stall execution.

nbclient waits for each cell's ``execute_reply`` with one ``shell_channel.get_msg(timeout)``
call.  After a cell that displays an ipywidgets ``interactive`` (the explorers of chapters 1, 2
and 5) that wait sometimes does not return although the kernel has replied and is idle
(jupyter/nbclient#312, open): a book build on a loaded machine waited about ten minutes on
chapter 1's explorer twice, and a full-mode run with no cell timeout waited on chapter 2's for
over half an hour until it was stopped.  :func:`install` makes every kernel client that nbclient
starts wait in polls of at most ``POLL_S`` seconds until the same deadline, so a reply that is
already there is read at the next poll.  Used by the website's build (``course_site.setup``) and
by ``benchmarks/bench_notebooks.py`` (``make bench``, ``make full``).
"""

from __future__ import annotations

import time
from queue import Empty

POLL_S = 2.0  # longest single wait for a message on the shell channel


def polling_get_msg(get_msg, poll_s: float = POLL_S):
    """``get_msg(timeout=...)`` (a kernel client's shell channel) waiting in polls of at most
    ``poll_s`` seconds: the same deadline (``timeout=None``: none), the same ``Empty`` at it."""

    async def get_msg_polling(timeout: float | None = None, **kwargs):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            try:
                message = get_msg(timeout=max(left, 0.0), **kwargs)
                if hasattr(message, "__await__"):
                    message = await message
                return message
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_polling


def install() -> None:
    """Make nbclient's kernel clients poll for replies (idempotent)."""
    from nbclient import NotebookClient

    start = NotebookClient.async_start_new_kernel_client
    if getattr(start, "_course_polling", False):
        return

    async def start_polling_client(self, *args, **kwargs):
        client = await start(self, *args, **kwargs)
        channel = client.shell_channel
        channel.get_msg = polling_get_msg(channel.get_msg)
        return client

    start_polling_client._course_polling = True
    NotebookClient.async_start_new_kernel_client = start_polling_client
