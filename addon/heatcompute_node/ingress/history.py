"""The last 24 hours of power, heat target and room temperature, for the dashboard.

A ring buffer of per-minute means in memory (1440 points a day, a few tens of kB), and
the last ten minutes sample by sample, so a node that just started already has a chart
and the recent past shows its detail. The minute means outlive a restart (an add-on
update, a reboot): ``saved`` and ``restore`` are what ``history_file.py`` keeps on disk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import time
from typing import Any

DAY_S = 86_400.0


SAVED_VERSION = 1
_BUCKET_FIELDS = (
    "start", "samples", "power_w", "power_samples", "target_w", "room_c", "room_samples"
)  # fmt: skip


@dataclass(slots=True)
class _Bucket:
    start: float
    """Wall-clock start of the bucket (epoch seconds)."""
    samples: int = 0
    power_w: float = 0.0
    power_samples: int = 0
    target_w: float = 0.0
    room_c: float = 0.0
    room_samples: int = 0

    def point(self) -> dict[str, Any]:
        return {
            "t": self.start,
            "power_w": round(self.power_w / self.power_samples, 2) if self.power_samples else None,
            "target_w": round(self.target_w / self.samples, 2) if self.samples else None,
            "room_c": round(self.room_c / self.room_samples, 2) if self.room_samples else None,
        }


class History:
    """Means per `bucket_s` over the last `span_s`; fed by the node's sampler."""

    def __init__(
        self, *, bucket_s: float = 60.0, span_s: float = DAY_S, detail_s: float = 600.0
    ) -> None:
        self.bucket_s = bucket_s
        self.detail_s = detail_s
        self._slots = max(1, int(span_s // bucket_s))
        self._buckets: deque[_Bucket] = deque(maxlen=self._slots)
        self._open: _Bucket | None = None
        self._recent: deque[dict[str, Any]] = deque()

    def add(
        self,
        *,
        power_w: float | None,
        target_w: float,
        room_c: float | None,
        at: float | None = None,
    ) -> None:
        at = time.time() if at is None else at
        self._recent.append(
            {
                "t": round(at, 1),
                "power_w": None if power_w is None else round(power_w, 2),
                "target_w": round(target_w, 2),
                "room_c": None if room_c is None else round(room_c, 2),
            }
        )
        while self._recent and self._recent[0]["t"] < at - self.detail_s:
            self._recent.popleft()
        start = at - at % self.bucket_s
        if self._open is None and self._buckets and self._buckets[-1].start == start:
            # Started again within the minute the saved history ended in: go on with it.
            self._open = self._buckets.pop()
        if self._open is None or start != self._open.start:
            if self._open is not None:
                self._buckets.append(self._open)
            self._open = _Bucket(start=start)
        bucket = self._open
        bucket.samples += 1
        bucket.target_w += target_w
        if power_w is not None:
            bucket.power_w += power_w
            bucket.power_samples += 1
        if room_c is not None:
            bucket.room_c += room_c
            bucket.room_samples += 1

    def saved(self) -> dict[str, Any]:
        """The minute means (the open minute too) as plain JSON data."""
        buckets = [*self._buckets, *([self._open] if self._open is not None else [])]
        return {
            "version": SAVED_VERSION,
            "bucket_s": self.bucket_s,
            "buckets": [[getattr(b, name) for name in _BUCKET_FIELDS] for b in buckets],
        }

    def restore(self, saved: dict[str, Any], now: float | None = None) -> int:
        """Take back the minute means of ``saved`` that lie within the span; how many.

        Data of another version or minute length is left out (a chart of other buckets
        would mix), and so is any row that doesn't read as a bucket. Call before samples
        arrive: restored minutes come before them.
        """
        if saved.get("version") != SAVED_VERSION or saved.get("bucket_s") != self.bucket_s:
            return 0
        rows = saved.get("buckets")
        if not isinstance(rows, list):
            return 0
        now = time.time() if now is None else now
        oldest = now - self._slots * self.bucket_s
        restored = 0
        for row in rows:
            bucket = _bucket(row)
            if bucket is not None and oldest <= bucket.start <= now:
                self._buckets.append(bucket)
                restored += 1
        return restored

    def points(self) -> list[dict[str, Any]]:
        """Minute means before the detailed window, then every sample within it."""
        detail_from = self._recent[0]["t"] if self._recent else float("inf")
        older = [b.point() for b in self._buckets if b.start + self.bucket_s <= detail_from]
        return older + list(self._recent)


def _bucket(row: Any) -> _Bucket | None:
    if not isinstance(row, list) or len(row) != len(_BUCKET_FIELDS):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
        return None
    start, samples, power_w, power_samples, target_w, room_c, room_samples = row
    return _Bucket(
        start=float(start),
        samples=int(samples),
        power_w=float(power_w),
        power_samples=int(power_samples),
        target_w=float(target_w),
        room_c=float(room_c),
        room_samples=int(room_samples),
    )
