"""Database tools: the SQLite files the owner lists, read-only (see readonly_sqlite.py).

Databases are named by their file name without extension (``home-assistant_v2``), so a
model never handles paths here. Table names a model gives are looked up in
``sqlite_master`` and only ever bound as parameters, never formatted into SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .readonly_sqlite import QueryRefusedError, open_readonly, run_query
from .tools import Arguments, Limits, Tool, ToolError, integer, schema, string


def database_names(paths: Sequence[Path]) -> dict[str, Path]:
    """name -> path; a second file with the same stem gets its parent folder's name too."""
    names: dict[str, Path] = {}
    for path in paths:
        name = path.stem
        if name in names:
            name = f"{path.parent.name}_{path.stem}"
        names[name] = path
    return names


class DatabaseTools:
    def __init__(self, databases: Sequence[Path], limits: Limits) -> None:
        self.databases = database_names(databases)
        self.limits = limits

    def tools(self) -> list[Tool]:
        database = string("database name, as list_databases shows it")
        return [
            Tool(
                name="list_databases",
                title="List databases",
                description="The SQLite databases this bridge may read, by name.",
                scope="databases",
                input_schema=schema(),
                run=self._list_databases,
            ),
            Tool(
                name="list_tables",
                title="List tables",
                description="Tables and views of a database.",
                scope="databases",
                input_schema=schema(("database",), database=database),
                run=self._in_thread(self.list_tables),
            ),
            Tool(
                name="describe_table",
                title="Describe a table",
                description="Columns of a table or view: name, type, nullable, primary key.",
                scope="databases",
                input_schema=schema(
                    ("database", "table"), database=database, table=string("table or view name")
                ),
                run=self._in_thread(self.describe_table),
            ),
            Tool(
                name="query_database",
                title="Query a database",
                description=(
                    "Run one read-only SQL SELECT on a database and get the rows (at most "
                    f"{self.limits.max_rows}; add LIMIT and WHERE to stay under it). "
                    "Statements that change anything are refused."
                ),
                scope="databases",
                input_schema=schema(
                    ("database", "sql"),
                    database=database,
                    sql=string("one SQLite SELECT statement"),
                    max_rows=integer(
                        "row cap for this query", minimum=1, maximum=self.limits.max_rows
                    ),
                ),
                run=self._in_thread(self.query),
            ),
        ]

    def _in_thread(self, function: Callable[[Arguments], Any]) -> Any:
        async def run(arguments: Arguments) -> Any:
            return await asyncio.to_thread(function, arguments)

        return run

    async def _list_databases(self, _arguments: Arguments) -> Any:
        return {
            "databases": [
                {"name": name, "file": path.name} for name, path in self.databases.items()
            ]
        }

    def _path(self, name: str) -> Path:
        if name not in self.databases:
            known = ", ".join(self.databases) or "none (setting mcp_databases)"
            raise ToolError(f"no database named {name!r}; known: {known}")
        return self.databases[name]

    def list_tables(self, arguments: Arguments) -> dict[str, Any]:
        try:
            with open_readonly(self._path(arguments["database"])) as db:
                rows = db.execute(
                    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ).fetchall()
        except QueryRefusedError as err:
            raise ToolError(str(err)) from err
        return {"tables": [{"name": name, "type": kind} for name, kind in rows]}

    def describe_table(self, arguments: Arguments) -> dict[str, Any]:
        table: str = arguments["table"]
        try:
            with open_readonly(self._path(arguments["database"])) as db:
                found = db.execute(
                    "SELECT name, type FROM sqlite_master "
                    "WHERE type IN ('table', 'view') AND name = ?",
                    (table,),
                ).fetchone()
                if found is None:
                    raise ToolError(f"no table or view named {table!r}; see list_tables")
                # The name is bound, never formatted in: pragma_table_info takes a parameter.
                columns = db.execute(
                    'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (found[0],)
                ).fetchall()
        except QueryRefusedError as err:
            raise ToolError(str(err)) from err
        return {
            "table": found[0],
            "type": found[1],
            "columns": [
                {"name": n, "type": t, "nullable": not notnull, "primary_key": bool(pk)}
                for n, t, notnull, pk in columns
            ],
        }

    def query(self, arguments: Arguments) -> dict[str, Any]:
        max_rows = min(arguments.get("max_rows", self.limits.max_rows), self.limits.max_rows)
        try:
            with open_readonly(self._path(arguments["database"])) as db:
                result = run_query(
                    db, arguments["sql"], max_rows=max_rows, timeout_s=self.limits.call_timeout_s
                )
        except QueryRefusedError as err:
            raise ToolError(str(err)) from err
        return {
            "columns": list(result.columns),
            "rows": [list(row) for row in result.rows],
            "row_count": len(result.rows),
            "truncated": result.truncated,
        }
