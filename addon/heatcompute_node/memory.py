"""How much memory the node's models may use: the machine's, or its container's limit.

Home Assistant reads it from the status to recommend a model that fits (a 3 GB model on
a 2 GB machine would only swap). Read once at start: it does not change while the node
runs, so it never makes a status event of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def total_memory_bytes(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """The machine's memory, or the container's limit where that is smaller (an add-on
    may be capped below the host's memory). None where neither can be read."""
    machine: int | None
    try:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        machine = None
    limits = [
        limit
        for limit in (
            _read_limit(cgroup_root / "memory.max"),  # cgroup v2
            _read_limit(cgroup_root / "memory" / "memory.limit_in_bytes"),  # v1
        )
        if limit is not None
    ]
    known = [m for m in (machine, *limits) if m is not None and m > 0]
    return min(known) if known else None


def _read_limit(path: Path) -> int | None:
    """A cgroup's memory limit; None for none ("max") or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    # cgroup v1 spells "no limit" as a huge number (page-rounded LONG_MAX).
    return int(text) if text.isdigit() and int(text) < 1 << 60 else None
