"""`DocumentIndex`: the shared folders, searchable by meaning.

It is driven from outside: the heat planner (or a person's "index now") calls
`index_some(max_chunks)` for one bounded batch of work, and asks `backlog()` what is
left and how old the oldest change is. A batch removes what left the folders, then reads,
cuts and embeds pending files (oldest change first) and writes each file in one
transaction. Passages of several files share embedding batches: that is what makes a
batch cheap per passage (bench/index_throughput.py measures it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import hashlib
import logging
from pathlib import Path
import sqlite3
import time
from typing import Any

import numpy as np

from ..engines.onnx.ocr import TextReader
from .backlog import FileError, IndexBacklog, IndexProgress, Passage
from .chunk import Chunk, chunk_sections
from .embed import Embedder, IndexUnavailableError
from .extract import ReaderNotReadyError, UnreadableFileError, kind_of, read_inside, sections_of
from .folders import FileSeen, SharedFolders
from .pending import Pending
from .status import IndexSnapshot
from .store import Change, FileRow, IndexStore
from .vectors import VectorMatrix

_LOGGER = logging.getLogger(__name__)

MAX_SEARCH_LIMIT = 50


@dataclass(slots=True)
class _Ready:
    """A file read and cut, waiting for its embeddings."""

    seen: FileSeen
    sha256: str
    chunks: list[Chunk]


@dataclass(slots=True)
class _Tally:
    indexed: int = 0
    reused: int = 0
    removed: int = 0
    failed: int = 0
    embedded: int = 0
    bytes_read: int = 0


class DocumentIndex:
    def __init__(
        self,
        folders: Sequence[Path],
        database: Path,
        embedder: Embedder,
        reader: TextReader | None = None,
        *,
        rescan_s: float = 300.0,
        freshness_s: float = 24 * 3600.0,
        batch_size: int = 32,
    ) -> None:
        self.folders = SharedFolders(folders)
        self.database = database
        self.embedder = embedder
        self.reader = reader
        self.rescan_s = rescan_s
        self.freshness_s = freshness_s
        self.batch_size = batch_size
        self._store: IndexStore | None = None
        self._pending = Pending(started_at=time.time())
        self._matrix: VectorMatrix | None = None
        self._matrix_lock = asyncio.Lock()
        self._work = asyncio.Lock()
        self._files = self._chunks = 0
        self._dimensions: int | None = None
        self._indexed_with: str | None = None
        """The embedding model of the stored vectors (the store's meta, kept here: this
        index is the store's only writer, and a search need not ask SQLite each time)."""
        self._errors: list[FileError] = []
        self._embedded_total = 0
        self._last_run: IndexProgress | None = None
        self._rescans: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[Any]] = set()

    # --- life cycle --------------------------------------------------------------------

    @property
    def store(self) -> IndexStore:
        if self._store is None:
            raise RuntimeError("the document index is not started")
        return self._store

    async def start(self) -> None:
        self._store = await asyncio.to_thread(_open_store, self.database)
        self._indexed_with = await asyncio.to_thread(self._store.meta, "model")
        await self._refresh_counts()
        await self.scan()
        self._rescans = asyncio.create_task(self._rescan_loop(), name="index-rescan")

    async def close(self) -> None:
        if self._rescans is not None:
            self._rescans.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rescans
        # A batch may wait for heat (OCR as background work): stop it, its file stays
        # pending (nothing of it was written).
        for batch in self._batches:
            batch.cancel()
        async with self._work:
            if self._store is not None:
                await asyncio.to_thread(self._store.close)
                self._store = None

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_s)
            try:
                await self.scan()
            except Exception:  # a folder unmounted for a moment: try again next time
                _LOGGER.exception("walking the shared folders failed")

    # --- what is left ------------------------------------------------------------------

    async def scan(self) -> IndexBacklog:
        """Walk the folders now (stat only) and compare with the store."""
        async with self._work:
            await self._scan()
        return self.backlog()

    async def _scan(self) -> None:
        seen = await asyncio.to_thread(lambda: list(self.folders.walk()))
        rows = await asyncio.to_thread(self.store.files)
        ocr_ready = self.reader is not None and not self.reader.missing_models()
        self._pending.update(seen, rows, time.time(), retry_waiting=ocr_ready)

    def backlog(self) -> IndexBacklog:
        return self._pending.backlog()

    # --- indexing ----------------------------------------------------------------------

    async def index_some(self, max_chunks: int, *, background: bool = True) -> IndexProgress:
        """One bounded batch: removals, then pending files until about `max_chunks`
        passages were embedded (a file is never split; the batch ends after the file that
        crosses the bound). `background`: images are read by OCR as background work,
        which waits for the governor's gate; False for a person's "index now"."""
        batch = asyncio.current_task()
        async with self._work:
            if batch is not None:
                self._batches.add(batch)
            try:
                self._last_run = await self._batch(max_chunks, background)
            finally:
                if batch is not None:
                    self._batches.discard(batch)
            return self._last_run

    async def _batch(self, max_chunks: int, background: bool) -> IndexProgress:
        started = time.monotonic()
        tally = _Tally()
        scanned = self._pending.scanned_at
        if scanned is None or time.time() - scanned > self.rescan_s:
            await self._scan()
        await self._check_model()
        await self._remove_gone(tally)
        rows = await asyncio.to_thread(self.store.files)
        ready: list[_Ready] = []
        queued = 0
        for seen in self._pending.ordered():
            if tally.embedded + queued >= max_chunks:
                break
            item = await self._prepare(seen, rows.get(seen.path), tally, background)
            if item is not None:
                ready.append(item)
                queued += len(item.chunks)
            if queued >= self.batch_size:
                await self._write(ready, tally)
                ready, queued = [], 0
                await self._refresh_counts(errors=False)  # live figures in a long batch
        await self._write(ready, tally)
        if not self._pending.files:
            # Nothing pending can be a move of a gone file any more.
            await asyncio.to_thread(self.store.purge_gone)
        await self._refresh_counts()
        return IndexProgress(
            at=time.time(),
            files_indexed=tally.indexed,
            files_reused=tally.reused,
            files_removed=tally.removed,
            files_failed=tally.failed,
            chunks_embedded=tally.embedded,
            bytes_read=tally.bytes_read,
            seconds=time.monotonic() - started,
            backlog=self.backlog(),
        )

    async def _check_model(self) -> None:
        """Vectors of another model don't compare: a new model starts a new index."""
        model = self.embedder.model_name
        if model is None:
            raise IndexUnavailableError("no embedding model on this node")
        stored = self._indexed_with
        if stored == model:
            return
        if stored is not None:
            _LOGGER.info("embedding model changed (%s -> %s): indexing anew", stored, model)
            await asyncio.to_thread(self.store.clear)
            async with self._matrix_lock:
                self._matrix = None
            await self._scan()
        await asyncio.to_thread(self.store.set_meta, "model", model)
        self._indexed_with = model

    async def _remove_gone(self, tally: _Tally) -> None:
        if not self._pending.removed:
            return
        paths = list(self._pending.removed)
        change = await asyncio.to_thread(self.store.mark_gone, paths, time.time())
        await self._apply(change)
        tally.removed += len(paths)
        self._pending.removed.clear()

    async def _prepare(
        self, seen: FileSeen, row: FileRow | None, tally: _Tally, background: bool
    ) -> _Ready | None:
        """Read one file; settle it at once when nothing needs embedding (unchanged,
        moved, unreadable), else hand back its passages."""
        kind = kind_of(seen.path) or "text"
        try:
            data, sha256 = await asyncio.to_thread(self._read, seen.path)
        except UnreadableFileError as err:
            await self._fail(seen, None, str(err), "failed", tally)
            return None
        tally.bytes_read += len(data)
        if row is not None and row.state == "indexed" and row.sha256 == sha256:
            await asyncio.to_thread(
                self.store.touch, seen.path, size=seen.size, mtime_ns=seen.mtime_ns
            )
            self._pending.done(seen.path)
            return None
        source = await asyncio.to_thread(self.store.with_hash, sha256, seen.path)
        if source is not None:
            change = await asyncio.to_thread(
                self.store.reuse,
                seen.path,
                source,
                size=seen.size,
                mtime_ns=seen.mtime_ns,
                now=time.time(),
            )
            await self._apply(change)
            tally.reused += 1
            self._pending.done(seen.path)
            return None
        try:
            sections = await sections_of(kind, data, self.reader, background=background)
        except UnreadableFileError as err:
            await self._fail(seen, sha256, str(err), "failed", tally)
            return None
        except ReaderNotReadyError as err:
            await self._fail(seen, sha256, str(err), "waiting", tally)
            return None
        return _Ready(seen, sha256, await asyncio.to_thread(chunk_sections, sections))

    def _read(self, path: str) -> tuple[bytes, str]:
        data = read_inside(self.folders.allowed, path)
        return data, hashlib.sha256(data).hexdigest()

    async def _fail(
        self,
        seen: FileSeen,
        sha256: str | None,
        error: str,
        state: str,
        tally: _Tally,
    ) -> None:
        change = await asyncio.to_thread(
            self.store.fail,
            seen.path,
            size=seen.size,
            mtime_ns=seen.mtime_ns,
            sha256=sha256,
            error=error,
            state="waiting" if state == "waiting" else "failed",
            now=time.time(),
        )
        await self._apply(change)
        tally.failed += 1
        self._pending.done(seen.path)

    async def _write(self, ready: list[_Ready], tally: _Tally) -> None:
        """Embed the passages of `ready` files (batch_size per call), then write each
        file in its own transaction."""
        texts = [chunk.text for item in ready for chunk in item.chunks]
        if not ready:
            return
        parts = []
        for start in range(0, len(texts), self.batch_size):
            parts.append(await self.embedder.embed(texts[start : start + self.batch_size]))
        vectors = np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)
        if len(vectors):
            await self._remember_dimensions(vectors.shape[1])
        offset = 0
        for item in ready:
            own = vectors[offset : offset + len(item.chunks)]
            offset += len(item.chunks)
            change = await asyncio.to_thread(
                self.store.replace,
                item.seen.path,
                size=item.seen.size,
                mtime_ns=item.seen.mtime_ns,
                sha256=item.sha256,
                chunks=item.chunks,
                vectors=own,
                now=time.time(),
            )
            await self._apply(change)
            tally.indexed += 1
            tally.embedded += len(item.chunks)
            self._embedded_total += len(item.chunks)
            self._pending.done(item.seen.path)

    # --- the vectors in memory -----------------------------------------------------------

    async def _remember_dimensions(self, dimensions: int) -> None:
        if self._dimensions is None:
            await asyncio.to_thread(self.store.set_meta, "dimensions", str(dimensions))
            self._dimensions = dimensions

    async def _apply(self, change: Change) -> None:
        """Keep a loaded matrix in step with a committed write (adding is idempotent, so
        a matrix loaded after the commit may see the write twice)."""
        async with self._matrix_lock:
            matrix = self._matrix
            if matrix is None:
                return  # loaded from the store when first searched
            if change.removed:
                matrix.remove(change.removed)
            if change.added:
                ids: Sequence[int] = change.added
                if change.vectors is not None:
                    vectors = change.vectors
                else:  # a move or a copy: the passages' vectors are in the store
                    found, vectors = await asyncio.to_thread(
                        self.store.vectors, matrix.dimensions, change.added
                    )
                    ids = [int(i) for i in found]
                await asyncio.to_thread(matrix.add, ids, vectors)

    async def _loaded_matrix(self, dimensions: int) -> VectorMatrix:
        async with self._matrix_lock:
            if self._matrix is None or self._matrix.dimensions != dimensions:
                ids, vectors = await asyncio.to_thread(self.store.vectors, dimensions)
                matrix = VectorMatrix(dimensions)
                await asyncio.to_thread(matrix.add, [int(i) for i in ids], vectors)
                self._matrix = matrix
            return self._matrix

    # --- search --------------------------------------------------------------------------

    async def search(self, query: str, limit: int = 5) -> list[Passage]:
        """The passages closest in meaning to `query`, best first."""
        if not query.strip():
            raise ValueError("the query is empty")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1-{MAX_SEARCH_LIMIT}")
        model = self.embedder.model_name
        if model is None:
            raise IndexUnavailableError("no embedding model on this node")
        if self._indexed_with not in (None, model):
            return []  # indexed with another model; the next batch starts anew
        [vector] = await self.embedder.embed([query])
        matrix = await self._loaded_matrix(len(vector))
        hits = await asyncio.to_thread(matrix.top, vector, limit)
        found = await asyncio.to_thread(self.store.passages, [chunk_id for chunk_id, _ in hits])
        return [
            Passage(
                file=stored.path,
                chunk=stored.ord,
                page=stored.page,
                line=stored.line,
                text=stored.text,
                score=score,
            )
            for chunk_id, score in hits
            if (stored := found.get(chunk_id)) is not None
        ]

    # --- figures -------------------------------------------------------------------------

    async def _refresh_counts(self, *, errors: bool = True) -> None:
        self._files, self._chunks = await asyncio.to_thread(self.store.counts)
        if errors:
            self._errors = await asyncio.to_thread(self.store.errors)
        dimensions = await asyncio.to_thread(self.store.meta, "dimensions")
        self._dimensions = int(dimensions) if dimensions else None

    @property
    def errors(self) -> list[FileError]:
        return list(self._errors)

    @property
    def model(self) -> str | None:
        return self.embedder.model_name

    def snapshot(self) -> IndexSnapshot:
        return IndexSnapshot(
            files=self._files,
            chunks=self._chunks,
            errors=len(self._errors),
            backlog=self.backlog(),
            last_run=self._last_run,
            chunks_embedded_total=self._embedded_total,
            freshness_s=self.freshness_s,
        )


def _open_store(database: Path) -> IndexStore:
    """The store; a file that is not a readable index (a disk fault, a stray file) is put
    aside and the index starts anew: it only holds what the folders hold, so it can
    always be rebuilt, and the node must not fail to start over it."""
    try:
        return IndexStore(database)
    except sqlite3.DatabaseError as err:
        aside = database.with_name(f"{database.name}.broken-{int(time.time())}")
        _LOGGER.warning(
            "the document index %s is unreadable (%s): kept as %s, indexing anew",
            database,
            err,
            aside,
        )
        database.rename(aside)
        for suffix in ("-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        return IndexStore(database)
