"""The loop-lag monitor counts what the loop itself is late by, not the machine's load.

Real asyncio loop and the real kernel figures (/proc schedstat); no fakes.
"""

from __future__ import annotations

import asyncio
import time

from heatcompute_node.loop_lag import STALL_S, LoopLagMonitor, run_queue_reader


def test_a_wait_for_the_cpu_is_taken_off_the_lag() -> None:
    monitor = LoopLagMonitor()
    monitor.record(0.08, now=1.0, cpu_wait_s=0.07)  # the machine was busy
    monitor.record(0.08, now=1.1, cpu_wait_s=0.0)  # the loop was
    monitor.record(0.03, now=1.2, cpu_wait_s=0.5)  # a wait longer than the lag
    snapshot = monitor.snapshot()
    assert snapshot.stalls == 1
    assert snapshot.lag_max_s == 0.08
    assert snapshot.cpu_wait_s == 0.07 + 0.03
    assert snapshot.ticks == 3


def test_the_kernel_reports_the_loop_threads_run_queue_wait() -> None:
    read = run_queue_reader()
    assert read is not None, "Linux reports per-thread run-queue time in schedstat"
    first = read()
    assert first >= 0.0
    assert read() >= first


async def _next_tick(monitor: LoopLagMonitor) -> None:
    """Until the monitor has recorded one more tick (it has no event to wait on; each
    pass yields the loop once, so the tick runs as soon as it is due)."""
    ticked = monitor.snapshot().ticks
    while monitor.snapshot().ticks == ticked:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_a_blocking_call_on_the_loop_is_a_stall() -> None:
    monitor = LoopLagMonitor(tick_s=0.005)
    monitor.start()
    try:
        await _next_tick(monitor)
        # Blocks the loop on purpose: no run-queue wait, so all of it is the loop's.
        time.sleep(STALL_S * 2)  # noqa: ASYNC251
        await _next_tick(monitor)
    finally:
        await monitor.stop()
    snapshot = monitor.snapshot()
    assert snapshot.stalls >= 1, snapshot
    assert snapshot.lag_max_s >= STALL_S, snapshot
