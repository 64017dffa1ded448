"""CPU time of the node's helper processes, which the simulated meter counts as the node's.

The node runs some of its work in child processes (ggml's RPC server for a fleet lead,
a lead's engine process). Their CPU time is this machine's power and this room's heat
as much as the node's own threads are: a real meter (RAPL, a smart plug) sees it
anyway, and the twin must too, or the heat of the work done for another node goes
missing from this room's energy figures.
"""

from __future__ import annotations

from collections.abc import Callable
import time

_helpers: dict[int, Callable[[], float]] = {}


def add_helper(cpu_s: Callable[[], float]) -> int:
    """Count ``cpu_s()`` (monotonic CPU seconds of a helper) from now on; returns a handle."""
    handle = id(cpu_s)
    _helpers[handle] = cpu_s
    return handle


def remove_helper(handle: int) -> None:
    _helpers.pop(handle, None)


def node_cpu_time() -> float:
    """CPU seconds of this process and its helpers (all threads, user and system)."""
    return time.process_time() + sum(cpu() for cpu in list(_helpers.values()))
