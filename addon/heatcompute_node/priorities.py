"""CPU priorities of the node's threads: the event loop first, the engines' compute last.

The engines keep every core busy (that is the heater's job), and the event loop, which
serves every HTTP request, stream and event, needs a core for a few milliseconds at a
time. With both at the same priority the loop waits its turn behind the engine's
threads (and the rest of the machine's), and a stream stalls. So, on Linux:

- engine threads (and the compute threads they start, which inherit it) run
  ``ENGINE_NICENESS`` steps nicer than the process: they yield to the loop, and to
  whatever else the machine runs, which a heater should;
- the event loop thread runs ``LOOP_BOOST`` steps less nice, where the process may
  raise priorities (root with CAP_SYS_NICE; not in a default container, where the
  engines' niceness alone keeps the loop ahead of them);
- worker threads started by the loop (``to_thread``, the prepare pool) go back to the
  process's own priority, since a thread inherits its creator's.

Elsewhere (no per-thread priorities) these are no-ops.
"""

from __future__ import annotations

import logging
import os
import threading

_LOGGER = logging.getLogger(__name__)

ENGINE_NICENESS = 5
LOOP_BOOST = 5

_BASE = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0


def _set(niceness: int) -> bool:
    if not hasattr(os, "setpriority"):
        return False
    try:
        # On Linux PRIO_PROCESS with a thread id sets that thread alone.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except OSError:
        return False
    return True


def engine_thread() -> None:
    """Call first thing on an engine's own thread."""
    _set(min(19, _BASE + ENGINE_NICENESS))


def compute_threads() -> int:
    """Make the native threads a library started (llama.cpp's OpenMP team) nicer, and
    no Python thread: those hold the GIL and locks the loop may wait for. Returns how
    many were changed."""
    try:
        tasks = {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return 0
    python = {t.native_id for t in threading.enumerate()}
    changed = 0
    for tid in tasks - python - {os.getpid()}:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < _BASE + ENGINE_NICENESS:
                os.setpriority(os.PRIO_PROCESS, tid, min(19, _BASE + ENGINE_NICENESS))
                changed += 1
        except OSError:
            continue
    return changed


def worker_thread() -> None:
    """Initializer of worker threads: the process's own priority."""
    _set(_BASE)


def event_loop_thread() -> bool:
    """Call on the event loop's thread once; False when not allowed (then nothing changes)."""
    raised = _set(max(-20, _BASE - LOOP_BOOST))
    _LOGGER.debug("event loop priority %s", "raised" if raised else "unchanged (not allowed)")
    return raised
