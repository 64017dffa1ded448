"""Copy bytes both ways between two stream pairs, counting them, until either side ends;
and the set of connections a tunnel end carries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
import contextlib
from dataclasses import dataclass

_CHUNK = 256 * 1024


@dataclass(slots=True)
class Traffic:
    """Bytes through a tunnel, seen from this end: sent to the peer, received from it."""

    bytes_sent: int = 0
    bytes_received: int = 0


class Connections:
    """The connections one tunnel end carries, each in the task that accepted it, so that
    closing the end ends them all (both ends, lead and worker, accept the same way)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def carry(self, writer: asyncio.StreamWriter, work: Awaitable[None]) -> None:
        """Run one accepted connection's ``work``; its writer is closed at the end."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await work
        finally:
            self._tasks.discard(task)
            writer.close()

    async def end_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def pipe(
    local: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    remote: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    traffic: Traffic,
) -> str:
    """Run until one side closes or fails; both are closed then. Returns which side
    ended it and how: ``"local closed"``, ``"remote closed"``, ``"remote: <error>"``..."""
    up = asyncio.create_task(_copy(local, remote, traffic, sent=True))
    down = asyncio.create_task(_copy(remote, local, traffic, sent=False))
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        for task in (up, down):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for _, writer in (local, remote):
            writer.close()
    return done.pop().result()


async def _copy(
    source: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    traffic: Traffic,
    *,
    sent: bool,
) -> str:
    """Copy until the source ends; says which side ended it (local = the sent side)."""
    source_name, target_name = ("local", "remote") if sent else ("remote", "local")
    while True:
        try:
            data = await source[0].read(_CHUNK)
        except (OSError, asyncio.IncompleteReadError) as err:
            return f"{source_name}: {err or type(err).__name__}"
        if not data:
            return f"{source_name} closed"
        try:
            target[1].write(data)
            await target[1].drain()
        except OSError as err:
            return f"{target_name}: {err or type(err).__name__}"
        if sent:
            traffic.bytes_sent += len(data)
        else:
            traffic.bytes_received += len(data)
