"""Jobs, their items and results, in one SQLite file in the data dir.

Why SQLite (stdlib): each item's result is written in one transaction together with the
job's progress, WAL + ``synchronous=FULL`` make a committed result survive a killed
process or a power cut, and ``(job_id, idx)`` as the primary key of results makes a
re-run item impossible to record twice. After a restart the results table is the truth:
a job's progress is recounted from it, and the items without a result are the ones left
to run.

Blocking calls: the executor calls these from a worker thread (``asyncio.to_thread``);
one lock serialises them on the one connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import json
from pathlib import Path
import sqlite3
import threading
from typing import Any

from .jobs import Job

STORE_FILE_NAME = "jobs.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
"""


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns (NORMAL could lose the last
        # results on power loss, and a lost result is an item run twice).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- jobs --------------------------------------------------------------------------

    def load_jobs(self) -> list[Job]:
        """Every job, oldest first, with progress recounted from the results."""
        with self._lock:
            rows = self._db.execute(
                "SELECT j.record, COUNT(r.idx), COALESCE(SUM(r.failed), 0) FROM jobs j "
                "LEFT JOIN results r ON r.job_id = j.id GROUP BY j.id ORDER BY j.created_at, j.id"
            ).fetchall()
        jobs = []
        for record, done, failed in rows:
            job = Job.from_record(json.loads(record))
            job.done_items, job.failed_items = done, failed
            jobs.append(job)
        return jobs

    def insert_job(self, job: Job, items: Sequence[dict[str, Any]]) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO jobs (id, created_at, record) VALUES (?, ?, ?)",
                (job.id, job.created_at, _dump(job.to_record())),
            )
            self._db.executemany(
                "INSERT INTO items (job_id, idx, payload) VALUES (?, ?, ?)",
                ((job.id, index, _dump(item)) for index, item in enumerate(items)),
            )

    def update_job(self, job: Job) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET record = ? WHERE id = ?", (_dump(job.to_record()), job.id)
            )

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # --- items and results ---------------------------------------------------------------

    def pending_indices(self, job_id: str) -> list[int]:
        """Items without a result, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT i.idx FROM items i LEFT JOIN results r "
                "ON r.job_id = i.job_id AND r.idx = i.idx "
                "WHERE i.job_id = ? AND r.idx IS NULL ORDER BY i.idx",
                (job_id,),
            ).fetchall()
        return [index for (index,) in rows]

    def items(self, job_id: str, indices: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = list(indices)
        with self._lock:
            rows = self._db.execute(
                f"SELECT idx, payload FROM items WHERE job_id = ? AND idx IN "  # noqa: S608 - placeholders only
                f"({','.join('?' * len(wanted))})",
                (job_id, *wanted),
            ).fetchall()
        return {index: json.loads(payload) for index, payload in rows}

    def add_result(self, job: Job, index: int, result: dict[str, Any], *, failed: bool) -> bool:
        """Record one item's result and the job's new record in one transaction.

        Returns False (and changes nothing) if the item already has a result: an item
        re-run after a crash never appears twice.
        """
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO results (job_id, idx, failed, result) VALUES (?, ?, ?, ?)",
                (job.id, index, int(failed), _dump(result)),
            )
            if cursor.rowcount == 0:
                return False
            self._db.execute(
                "UPDATE jobs SET record = ? WHERE id = ?", (_dump(job.to_record()), job.id)
            )
            return True

    def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Results in item order: ``{"index": i, **result}``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, result FROM results WHERE job_id = ? ORDER BY idx LIMIT ? OFFSET ?",
                (job_id, limit, offset),
            ).fetchall()
        return [{"index": index, **json.loads(result)} for index, result in rows]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
