"""Each job's store writes, one at a time, and none cut in half.

What the node reports about a job (events, ``GET /api/jobs``) comes from the in-memory
job, and that job changes only after its write is committed, so nothing is reported
that a restart could take back. Two rules keep the store and memory the same:

- A job's writes take turns (one lock per job). A cancel and the job's completion can't
  interleave: whichever writes first wins, and the other, in its turn, finds the job
  finished and changes nothing.
- A write, once begun, runs to its end in a task of its own: a caller cancelled while it
  waits (the executor stopping, a dropped request) leaves it running, and ``drain`` waits
  for every one, so stopping never leaves the store behind memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class JobWrites:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[Any]] = set()

    async def run[T](self, job_id: str, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` in the job's turn, to its end even if this caller is cancelled."""
        task = asyncio.create_task(self._in_turn(job_id, write))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _in_turn[T](self, job_id: str, write: Callable[[], Awaitable[T]]) -> T:
        async with self._locks.setdefault(job_id, asyncio.Lock()):
            return await write()

    def forget(self, job_id: str) -> None:
        """Drop a deleted job's lock (a later write of it would find it gone anyway)."""
        self._locks.pop(job_id, None)

    async def drain(self) -> None:
        """Wait until no write is running, including writes those writes start."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
