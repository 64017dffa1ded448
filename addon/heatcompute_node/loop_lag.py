"""How late the event loop runs: a timer that should fire every 20 ms, and how late it is.

Everything the node serves goes through one asyncio loop (HTTP, SSE, the sampler, the
job executor), so anything slow run on it (a template, a tokenizer, a grammar, a file)
delays all of them. The monitor makes that visible: /metrics and /api/status carry the
worst lag of the last 10 s, the worst since start and how many ticks were late by more
than 50 ms (a stall a person would notice in a stream).

Lateness is the loop's own: the time the loop's thread sat runnable in the kernel's run
queue, waiting for a CPU that other processes held, is taken off (Linux reports it per
thread in /proc/<pid>/task/<tid>/schedstat). On a busy machine that wait is the
machine's, not the node's, and shows separately as ``cpu_wait_s``; a blocking call, a
long computation or a held GIL on the loop still counts in full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import os
import threading
import time
from typing import Any
import weakref

from .snapshot import IDLE, EnergyFigures, EngineLoad, Metric, counter, gauge

TICK_S = 0.02
WINDOW_S = 10.0
STALL_S = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopLagSnapshot:
    key: str = "event_loop"
    lag_s: float
    """Worst lag of the last 10 s."""
    lag_max_s: float
    """Worst lag since start."""
    stalls: int
    """Ticks late by more than 50 ms."""
    ticks: int
    cpu_wait_s: float = 0.0
    """Time the loop's thread waited for a CPU held by others, since start."""

    @property
    def load(self) -> EngineLoad:
        return IDLE

    @property
    def models(self) -> tuple[dict[str, Any], ...]:
        return ()

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        return {
            "lag_s": round(self.lag_s, 4),
            "lag_max_s": round(self.lag_max_s, 4),
            "stalls": self.stalls,
            "cpu_wait_s": round(self.cpu_wait_s, 3),
        }

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        yield gauge(
            "heatcompute_event_loop_lag_seconds",
            "Worst event loop lag over the last 10 s",
            round(self.lag_s, 4),
        )
        yield gauge(
            "heatcompute_event_loop_lag_max_seconds",
            "Worst event loop lag since start",
            round(self.lag_max_s, 4),
        )
        yield counter(
            "heatcompute_event_loop_stalls",
            "Event loop ticks late by more than 50 ms",
            self.stalls,
        )
        yield counter(
            "heatcompute_event_loop_cpu_wait_seconds",
            "Time the event loop waited for a CPU held by other processes",
            round(self.cpu_wait_s, 3),
        )


def run_queue_reader() -> Callable[[], float] | None:
    """A reader of the calling thread's run-queue wait in seconds; None where the kernel
    does not report it (then lateness is measured on the wall clock alone)."""
    path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    try:
        # Opened once and read again from offset 0 each tick (procfs regenerates it):
        # one syscall per tick on the loop instead of open, read and close.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None

    def read() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9

    try:
        read()
    except (OSError, ValueError, IndexError):
        os.close(fd)
        return None
    # The descriptor lives as long as the reader (the monitor's task, i.e. the node).
    weakref.finalize(read, os.close, fd)
    return read


class LoopLagMonitor:
    """Measures the loop's lag; ``snapshot`` reads, the ticking task alone writes."""

    def __init__(self, *, tick_s: float = TICK_S, window_s: float = WINDOW_S) -> None:
        self.tick_s = tick_s
        self.window_s = window_s
        self._recent: deque[tuple[float, float]] = deque()
        self._max = 0.0
        self._stalls = 0
        self._ticks = 0
        self._cpu_wait = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._tick_forever(), name="heatcompute-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def record(self, lag_s: float, now: float, cpu_wait_s: float = 0.0) -> None:
        """One tick, ``lag_s`` late on the wall clock, of which ``cpu_wait_s`` the loop's
        thread waited in the run queue."""
        cpu_wait_s = min(max(0.0, cpu_wait_s), max(0.0, lag_s))
        self._cpu_wait += cpu_wait_s
        lag_s = max(0.0, lag_s - cpu_wait_s)
        self._ticks += 1
        self._max = max(self._max, lag_s)
        if lag_s > STALL_S:
            self._stalls += 1
        recent = self._recent
        # A sliding-window maximum: a lag followed by a larger one can never be the
        # window's worst again, so only decreasing lags are kept (a few entries at most).
        while recent and recent[-1][1] <= lag_s:
            recent.pop()
        while recent and recent[0][0] < now - self.window_s:
            recent.popleft()
        recent.append((now, lag_s))

    def snapshot(self) -> LoopLagSnapshot:
        now = time.monotonic()
        recent = [lag for at, lag in self._recent if at >= now - self.window_s]
        return LoopLagSnapshot(
            lag_s=max(recent, default=0.0),
            lag_max_s=self._max,
            stalls=self._stalls,
            ticks=self._ticks,
            cpu_wait_s=self._cpu_wait,
        )

    async def _tick_forever(self) -> None:
        # Made here, on the loop's own thread: the wait read is that thread's.
        waited = run_queue_reader()
        queued = waited() if waited else 0.0
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            before, queued = queued, (waited() if waited else 0.0)
            self.record(now - started - self.tick_s, now, queued - before)
