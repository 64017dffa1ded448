"""The index's values as others see them: what is left to do, what a batch did, a found
passage. Frozen, so the planner, the API and the status can hold them without locks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexBacklog:
    files_pending: int
    """New or changed files not yet indexed (they need reading and embedding)."""
    files_removed: int
    """Files gone from the folders whose passages are still stored (cheap: no embedding)."""
    bytes_pending: int
    chunks_estimate: int
    """Passages still to embed, estimated from the pending files' sizes."""
    oldest_change: float | None
    """Unix time of the oldest pending change (a file's mtime, or when a removal was
    seen); None when nothing is pending. Freshness deadlines count from here."""
    scanned_at: float | None
    """When the folders were last walked (None: not yet)."""

    @property
    def empty(self) -> bool:
        return self.files_pending == 0 and self.files_removed == 0

    def deadline(self, freshness_s: float) -> float | None:
        """When the oldest pending change must be searchable (None: nothing pending)."""
        return None if self.oldest_change is None else self.oldest_change + freshness_s

    def as_json(self, freshness_s: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files_pending": self.files_pending,
            "files_removed": self.files_removed,
            "bytes_pending": self.bytes_pending,
            "chunks_estimate": self.chunks_estimate,
            "oldest_change": iso(self.oldest_change),
            "scanned_at": iso(self.scanned_at),
        }
        if freshness_s is not None:
            out["deadline"] = iso(self.deadline(freshness_s))
        return out


EMPTY_BACKLOG = IndexBacklog(
    files_pending=0,
    files_removed=0,
    bytes_pending=0,
    chunks_estimate=0,
    oldest_change=None,
    scanned_at=None,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexProgress:
    """What one bounded batch (`DocumentIndex.index_some`) did."""

    at: float
    """Unix time the batch ended."""
    files_indexed: int
    files_reused: int
    """Moved or copied files: the same content was stored already, nothing was embedded."""
    files_removed: int
    files_failed: int
    chunks_embedded: int
    bytes_read: int
    seconds: float
    backlog: IndexBacklog
    """What is left after this batch."""

    def as_json(self, freshness_s: float | None = None) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "files_indexed": self.files_indexed,
            "files_reused": self.files_reused,
            "files_removed": self.files_removed,
            "files_failed": self.files_failed,
            "chunks_embedded": self.chunks_embedded,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "backlog": self.backlog.as_json(freshness_s),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Passage:
    """A found passage: where it is and how close it is to the question."""

    file: str
    chunk: int
    """The passage's number in its file, from 0."""
    page: int | None
    """PDF page, from 1 (None for other files)."""
    line: int
    """First line of the passage (in its page, for PDFs), from 1."""
    text: str
    score: float
    """Cosine similarity to the query, -1..1."""

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "chunk": self.chunk,
            "page": self.page,
            "line": self.line,
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FileError:
    """A file the index could not read (listed, never fatal; retried once it changes)."""

    file: str
    error: str
    at: float

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "error": self.error, "at": iso(self.at)}
