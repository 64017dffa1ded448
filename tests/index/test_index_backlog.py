"""What the heat planner reads and drives: the backlog (files, estimated passages, the
oldest change and its freshness deadline) and bounded batches (`index_some`)."""

from __future__ import annotations

import os
from pathlib import Path
import time

from .conftest import MakeNode
from .documents import write_household


async def test_bounded_batches_and_the_backlog_the_planner_reads(
    make_node: MakeNode, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    files = write_household(share)
    # An old file copied in today: its change counts from the node's start, not from 2019.
    old = time.mktime((2019, 5, 1, 12, 0, 0, 0, 0, -1))
    os.utime(files["recipe"], (old, old))
    before_start = time.time()
    node = await make_node(share, index_freshness_h=6)
    index = node.index

    backlog = index.backlog()  # the walk at start, no batch yet
    assert (backlog.files_pending, backlog.files_removed) == (4, 0)
    assert backlog.bytes_pending == sum(path.stat().st_size for path in files.values())
    assert backlog.chunks_estimate >= 4
    assert backlog.oldest_change is not None
    assert backlog.oldest_change >= before_start - 1  # not 2019
    assert backlog.deadline(index.freshness_s) == backlog.oldest_change + 6 * 3600
    assert index.freshness_s == 6 * 3600

    # One passage asked for: one whole file is done (never half of one), oldest first.
    first = await index.index_some(1, background=False)
    assert first.files_indexed == 1
    assert first.chunks_embedded >= 1
    assert first.backlog.files_pending == 3
    # Repeated calls finish the rest and then have nothing to do.
    while not (progress := await index.index_some(2, background=False)).backlog.empty:
        assert progress.files_indexed >= 1
    idle = await index.index_some(100, background=False)
    assert (idle.files_indexed, idle.chunks_embedded, idle.backlog.empty) == (0, 0, True)
    assert idle.backlog.oldest_change is None
    snapshot = index.snapshot()
    assert (snapshot.files, snapshot.chunks, snapshot.key) == (4, 7, "documents")
    assert snapshot.last_run == idle

    # A removal is pending work too (cheap: nothing to embed), seen by the next walk.
    files["recipe"].unlink()
    backlog = await index.scan()
    assert (backlog.files_pending, backlog.files_removed, backlog.chunks_estimate) == (0, 1, 0)
    assert backlog.oldest_change is not None
    done = await index.index_some(1, background=False)
    assert (done.files_removed, done.backlog.empty) == (1, True)
