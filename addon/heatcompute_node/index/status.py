"""The index's figures as a status source: the ``documents`` section of /api/status and
the ``heatcompute_index_*`` metrics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..snapshot import IDLE, EnergyFigures, EngineLoad, Metric, counter, gauge
from .backlog import IndexBacklog, IndexProgress


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexSnapshot:
    files: int
    """Searchable files."""
    chunks: int
    """Their passages."""
    errors: int
    """Files listed as unreadable."""
    backlog: IndexBacklog
    last_run: IndexProgress | None
    chunks_embedded_total: int
    """Passages embedded since the node started."""
    freshness_s: float
    key: str = "documents"
    models: tuple[Mapping[str, Any], ...] = ()

    @property
    def load(self) -> EngineLoad:
        return IDLE  # its work is counted by the engines it runs on

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        return {
            "files": self.files,
            "chunks": self.chunks,
            "errors": self.errors,
            "backlog": self.backlog.as_json(self.freshness_s),
            "last_run": None if self.last_run is None else self.last_run.as_json(),
            "chunks_embedded_total": self.chunks_embedded_total,
        }

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        yield gauge("heatcompute_index_files", "Searchable files in the document index", self.files)
        yield gauge("heatcompute_index_chunks", "Passages in the document index", self.chunks)
        yield gauge(
            "heatcompute_index_backlog_files",
            "Files waiting to be indexed or removed",
            self.backlog.files_pending + self.backlog.files_removed,
        )
        yield gauge(
            "heatcompute_index_backlog_chunks",
            "Passages estimated still to embed",
            self.backlog.chunks_estimate,
        )
        yield gauge("heatcompute_index_errors", "Files the index could not read", self.errors)
        yield counter(
            "heatcompute_index_chunks_embedded",
            "Passages embedded by the document index",
            self.chunks_embedded_total,
        )
