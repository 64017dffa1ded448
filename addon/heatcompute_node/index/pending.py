"""What the last walk found to do: new or changed files, and files that left.

A change counts from when the node could first have seen it: a file's modification
time, but never before the node started (an archive copied in years after its files
were written is new to the index now, and its freshness deadline runs from now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .backlog import IndexBacklog
from .chunk import estimate_chunks
from .extract import kind_of
from .folders import FileSeen
from .store import FileRow


@dataclass(slots=True)
class Pending:
    started_at: float
    files: dict[str, FileSeen] = field(default_factory=dict)
    changed_at: dict[str, float] = field(default_factory=dict)
    removed: dict[str, float] = field(default_factory=dict)
    scanned_at: float | None = None

    def update(
        self,
        seen: Iterable[FileSeen],
        rows: Mapping[str, FileRow],
        now: float,
        *,
        retry_waiting: bool,
    ) -> None:
        """Compare a walk with the store: what is new, changed or gone."""
        files: dict[str, FileSeen] = {}
        present: set[str] = set()
        for item in seen:
            present.add(item.path)
            row = rows.get(item.path)
            if (
                row is None
                or row.state == "gone"
                or (row.size, row.mtime_ns) != (item.size, item.mtime_ns)
                or (row.state == "waiting" and retry_waiting)
            ):
                files[item.path] = item
        changed = {
            path: self.changed_at.get(path, min(now, max(item.mtime_ns / 1e9, self.started_at)))
            for path, item in files.items()
        }
        removed = {
            path: self.removed.get(path, now)
            for path, row in rows.items()
            if row.state != "gone" and path not in present
        }
        self.files, self.changed_at, self.removed, self.scanned_at = files, changed, removed, now

    def done(self, path: str) -> None:
        self.files.pop(path, None)
        self.changed_at.pop(path, None)

    def ordered(self) -> list[FileSeen]:
        """Pending files, oldest change first."""
        return sorted(self.files.values(), key=lambda f: (self.changed_at[f.path], f.path))

    def backlog(self) -> IndexBacklog:
        times = [*self.changed_at.values(), *self.removed.values()]
        return IndexBacklog(
            files_pending=len(self.files),
            files_removed=len(self.removed),
            bytes_pending=sum(f.size for f in self.files.values()),
            chunks_estimate=sum(
                estimate_chunks(kind_of(f.path) or "text", f.size) for f in self.files.values()
            ),
            oldest_change=min(times) if times else None,
            scanned_at=self.scanned_at,
        )
