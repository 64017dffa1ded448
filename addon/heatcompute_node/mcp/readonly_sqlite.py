"""Opening a SQLite database so that nothing a query says can change it.

Four locks, each enough on its own for most attacks, together for all of them:

1. the file is opened through a ``mode=ro`` URI: SQLite itself refuses to write;
2. ``PRAGMA query_only``: no statement that would write may even start;
3. an authorizer that allows reads only (SELECT, reading columns, plain functions,
   recursive CTEs) and refuses everything else: ATTACH, PRAGMA, writes, schema changes,
   ``load_extension()``;
4. ``sqlite3.Connection.execute`` runs one statement; a second one is an error.

A progress handler stops a query at its deadline (a never-ending recursive CTE included),
and rows are fetched up to a cap. A reader of a WAL database sees the last committed state
and never blocks the writer (Home Assistant's recorder).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
from dataclasses import dataclass
from pathlib import Path
import sqlite3
import time
from typing import Any
from urllib.parse import quote

# Functions that reach outside the database, or load code, are refused by name.
_FORBIDDEN_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_offset"}
)
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_ACTIONS = [
    "INSERT",
    "UPDATE",
    "DELETE",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "TRANSACTION",
    "SAVEPOINT",
    "ALTER_TABLE",
    "REINDEX",
    "ANALYZE",
    "CREATE_TABLE",
    "CREATE_INDEX",
    "CREATE_VIEW",
    "CREATE_TRIGGER",
    "CREATE_TEMP_TABLE",
    "CREATE_TEMP_INDEX",
    "CREATE_TEMP_VIEW",
    "CREATE_TEMP_TRIGGER",
    "CREATE_VTABLE",
    "DROP_TABLE",
    "DROP_INDEX",
    "DROP_VIEW",
    "DROP_TRIGGER",
    "DROP_TEMP_TABLE",
    "DROP_TEMP_INDEX",
    "DROP_TEMP_VIEW",
    "DROP_TEMP_TRIGGER",
    "DROP_VTABLE",
]
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name.lower().replace("_", " ") for name in _ACTIONS
}
_PROGRESS_EVERY = 1000  # virtual machine steps between deadline checks


class QueryRefusedError(Exception):
    """The query was refused, stopped or failed; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool


@contextlib.contextmanager
def open_readonly(path: Path, timeout_s: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A read-only connection to `path`, closed afterwards."""
    if not path.is_file():
        raise QueryRefusedError(f"database {path} does not exist")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
    except sqlite3.Error as err:
        raise QueryRefusedError(f"cannot open {path}: {err}") from err
    try:
        connection.execute("PRAGMA query_only = ON")
        yield connection
    finally:
        connection.close()


def _authorizer(refusals: list[str]) -> Any:
    def authorize(action: int, arg1: str | None, arg2: str | None, *_: str | None) -> int:
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _FORBIDDEN_FUNCTIONS:
            refusals.append(f"the function {arg2}()")
            return sqlite3.SQLITE_DENY
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        refusals.append(f"{what} {arg1 or ''}".strip())
        return sqlite3.SQLITE_DENY

    return authorize


def run_query(
    connection: sqlite3.Connection,
    sql: str,
    parameters: Sequence[Any] = (),
    *,
    max_rows: int,
    timeout_s: float,
) -> QueryResult:
    """Run one read-only statement; refuse anything else with a reason."""
    if "\x00" in sql:
        raise QueryRefusedError("the query holds a NUL byte")
    if not sql.strip():
        raise QueryRefusedError("the query is empty")
    if not sqlite3.complete_statement(sql.strip().rstrip(";") + ";"):
        raise QueryRefusedError("the query is not a complete SQL statement")
    refusals: list[str] = []
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1  # non-zero interrupts the statement
        return 0

    connection.set_authorizer(_authorizer(refusals))
    connection.set_progress_handler(progress, _PROGRESS_EVERY)
    try:
        cursor = connection.execute(sql, tuple(parameters))
        rows = cursor.fetchmany(max_rows + 1)
        columns = tuple(d[0] for d in cursor.description or ())
        cursor.close()
    except sqlite3.ProgrammingError as err:
        if "one statement" in str(err):
            raise QueryRefusedError(
                "only one statement per query; send them one at a time"
            ) from err
        raise QueryRefusedError(f"the query failed: {err}") from err
    except sqlite3.DatabaseError as err:
        if timed_out:
            raise QueryRefusedError(
                f"the query ran longer than {timeout_s:g} s and was stopped; "
                "narrow it (a WHERE clause or a LIMIT)"
            ) from err
        if refusals:
            raise QueryRefusedError(
                f"read-only: {refusals[0]} is not allowed; only SELECT queries that read run here"
            ) from err
        if "readonly" in str(err).lower() or "read-only" in str(err).lower():
            raise QueryRefusedError(f"read-only: the database can't be changed ({err})") from err
        raise QueryRefusedError(f"the query failed: {err}") from err
    finally:
        connection.set_authorizer(None)
        connection.set_progress_handler(None, 0)
    return QueryResult(
        columns=columns,
        rows=tuple(tuple(r) for r in rows[:max_rows]),
        truncated=len(rows) > max_rows,
    )
