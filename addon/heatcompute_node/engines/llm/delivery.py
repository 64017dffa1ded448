"""Events from the engine thread to an event loop, without the engine waiting on the loop.

`loop.call_soon_threadsafe` per token wakes the loop through its self-pipe with
`socket.send`, which drops the GIL for the syscall: the woken loop thread takes the GIL
and the engine thread waits for it to run its whole per-token work (queue, stream,
JSON, socket write) before it can start the next decode. On two cores under load that
wait was the largest cost of a step outside `llama_decode` (bench/engine_step.py).

Here the engine thread appends the event to a queue and, only if the loop has not been
woken since it last drained, writes to a wake-up fd of its own through a libc `write`
called *with the GIL held* (ctypes.PyDLL does not release it). The loop thread, woken,
waits for the GIL until the engine starts its next decode (which releases it for the
whole call), and delivers every event that arrived meanwhile in one callback: the
loop's work overlaps the decode instead of delaying it, and a loop that falls behind
takes several tokens per wake.

Events that can wait a moment (a stream's next words, not its first or its end) wake
the loop at most every ``STREAM_INTERVAL_S``; those that arrive in between ride along
with the next wake. The loop's work per token, and the client's (the handle joins the
words that arrived together into one chunk), then fall by the tokens per wake, and the
engine's cores are interrupted less often. vLLM's ``--stream-interval`` does the same in
tokens; a time bound keeps the delay the same at any speed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
import ctypes
import logging
import os
import threading
import time
from typing import Any
import weakref

_LOGGER = logging.getLogger(__name__)

type Deliver = Callable[[Any], None]


def _gil_holding_write() -> Callable[[int, bytes, int], int] | None:
    """libc's write(2), called without releasing the GIL; None where there is no libc."""
    try:
        write = ctypes.PyDLL(None).write
    except (OSError, AttributeError):
        return None
    write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    write.restype = ctypes.c_ssize_t
    return write


_WRITE = _gil_holding_write()
_ONE = (1).to_bytes(8, "little")  # an eventfd takes 8 bytes; a pipe takes any
STREAM_INTERVAL_S = 0.02
"""Longest an event sent with ``urgent=False`` waits for a wake: a 50 Hz stream of words
reads and speaks as smoothly as one per token."""


class LoopDelivery:
    """One event loop's inbox for events from engine threads (any number of them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # No reference to the loop is kept: the loop (its selector) holds this object,
        # and both go together.
        self._pending: deque[tuple[Deliver, Any]] = deque()
        self._woken = False
        self._woken_at = -STREAM_INTERVAL_S
        if hasattr(os, "eventfd"):
            self._read_fd = self._write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)
        # Registered on the loop's own thread; a wake written before that waits in the
        # fd (the selector is level-triggered).
        if _on_loop_thread(loop):
            loop.add_reader(self._read_fd, self._drain)
        else:
            loop.call_soon_threadsafe(loop.add_reader, self._read_fd, self._drain)
        weakref.finalize(self, _close, {self._read_fd, self._write_fd})

    def send(self, deliver: Deliver, event: Any, *, urgent: bool = True) -> None:
        """Called from an engine thread: `deliver(event)` runs soon on the loop.

        Not ``urgent``: it may wait for the next wake, at most ``STREAM_INTERVAL_S`` after
        the last one, if the sender sends again by then (a stream always ends with an
        urgent event, which takes every waiting one along).
        """
        self._pending.append((deliver, event))
        if self._woken:
            return  # the loop has been woken and has not drained yet: it takes this too
        now = time.monotonic()
        if not urgent and now - self._woken_at < STREAM_INTERVAL_S:
            return
        self._woken = True
        self._woken_at = now
        if _WRITE is not None:
            _WRITE(self._write_fd, _ONE, len(_ONE))  # EAGAIN: a wake is pending anyway
        else:  # pragma: no cover - no libc
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, _ONE)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)
        # Cleared before taking events: one sent after this point wakes the loop again.
        self._woken = False
        pending = self._pending
        while pending:
            deliver, event = pending.popleft()
            try:
                deliver(event)
            except Exception:
                _LOGGER.exception("delivering an engine event failed")


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _close(fds: set[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


_deliveries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopDelivery] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def delivery_for(loop: asyncio.AbstractEventLoop) -> LoopDelivery:
    """The inbox of `loop` (made on first use, from any thread)."""
    with _lock:
        delivery = _deliveries.get(loop)
        if delivery is None:
            delivery = _deliveries[loop] = LoopDelivery(loop)
        return delivery
