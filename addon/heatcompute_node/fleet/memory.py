"""Free memory of this machine as the split plan counts it (a container's own limit too)."""

from __future__ import annotations

from pathlib import Path

from ..memory import CGROUP_ROOT, total_memory_bytes

MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path = MEMINFO, cgroup_root: Path = CGROUP_ROOT) -> int:
    """MemAvailable (what can be allocated without swapping), or what the container's
    limit leaves, whichever is less; 0 when unknown."""
    free = _mem_available(meminfo)
    limit = total_memory_bytes(cgroup_root)
    used = _cgroup_usage(cgroup_root)
    if limit is not None and used is not None:
        free = min(free, max(0, limit - used))
    return free


def _mem_available(meminfo: Path) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_usage(cgroup_root: Path) -> int | None:
    for path in (cgroup_root / "memory.current", cgroup_root / "memory" / "memory.usage_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None
