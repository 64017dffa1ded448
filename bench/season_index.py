"""The document index in the simulated season: its backlog, as the node's planner sees it.

The planner gets the backlog through the node's own ``IndexWork`` (the same freshness
deadline, priority and remaining-work estimate as on a node); what is simulated is the
index itself: documents arrive in the allowed folders (bench/household_documents.py),
and indexing them costs their full-power seconds, oldest change first, as
``DocumentIndex.index_some`` takes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bench.household_documents import Document
from heatcompute_node.heat.index_work import IndexWork
from heatcompute_node.heat.jobs import Job
from heatcompute_node.index.backlog import IndexBacklog, IndexProgress

FRESHNESS_S = 24 * 3600.0


@dataclass
class SimIndex:
    """The documents in the folders and how far indexing has got (``DocumentBacklog``)."""

    arriving: deque[Document]
    now: float = 0.0
    pending: deque[Document] = field(default_factory=deque)
    pending_chunks: int = 0
    spent_s: float = 0.0
    """Full-power seconds spent on the document at the head of ``pending``."""
    indexed: list[tuple[Document, float]] = field(default_factory=list)
    """Each document indexed, with when it became searchable."""

    def arrive(self, now: float) -> None:
        self.now = now
        while self.arriving and self.arriving[0].arrives_at <= now:
            document = self.arriving.popleft()
            self.pending.append(document)
            self.pending_chunks += document.chunks

    def backlog(self) -> IndexBacklog:
        return IndexBacklog(
            files_pending=len(self.pending),
            files_removed=0,
            bytes_pending=self.pending_chunks * 600,
            chunks_estimate=self.pending_chunks,
            oldest_change=self.pending[0].arrives_at if self.pending else None,
            scanned_at=self.now,
        )

    async def index_some(self, max_chunks: int) -> IndexProgress:
        raise NotImplementedError("the season runs index work through work()")

    def work(self, seconds: float, end: float) -> tuple[float, int]:
        """Spend up to ``seconds`` of full power; (seconds used, chunks embedded)."""
        used, chunks = 0.0, 0
        while self.pending and used < seconds:
            head = self.pending[0]
            step = min(seconds - used, head.cost_s - self.spent_s)
            used += step
            self.spent_s += step
            if self.spent_s >= head.cost_s - 1e-9:
                self.pending.popleft()
                self.pending_chunks -= head.chunks
                self.spent_s = 0.0
                chunks += head.chunks
                self.indexed.append((head, end))
        return used, chunks

    def searchable_in_time(self, freshness_s: float = FRESHNESS_S) -> tuple[int, int]:
        """(documents searchable within ``freshness_s`` of arriving, documents)."""
        total = len(self.indexed) + len(self.pending) + len(self.arriving)
        # The archive found at the start is due a day after the index first saw it.
        in_time = sum(1 for doc, at in self.indexed if at <= doc.arrives_at + freshness_s)
        return in_time, total


def index_work(index: SimIndex, clock: list[float]) -> IndexWork:
    """The node's IndexWork on the simulated index, on the simulation's clock."""
    return IndexWork(
        index,
        freshness_s=FRESHNESS_S,
        engine_threads=lambda: 1,
        clock=lambda: clock[0],
        monotonic=lambda: clock[0],
    )


def index_job(work: IndexWork | None) -> list[Job]:
    """The backlog as the planner's job, or nothing."""
    job = work.job() if work is not None else None
    return [] if job is None else [job]
