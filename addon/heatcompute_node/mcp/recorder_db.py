"""History and long-term statistics read straight from Home Assistant's recorder database.

The add-on maps Home Assistant's configuration folder read-only, so the recorder's
SQLite file (``home-assistant_v2.db``) is readable without a token and without loading
Home Assistant: a day of history is one indexed range scan. The tables and columns are
the recorder's (schema 43 and later: ``states_meta``, ``states.last_updated_ts``,
``statistics_meta``, ``statistics`` and ``statistics_short_term``). The database is
opened like every other one here: read-only, ``query_only``, parameters bound.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
import sqlite3
import time
from typing import Any

from .readonly_sqlite import QueryRefusedError, open_readonly
from .tools import ToolError

_TABLES = {"5minute": "statistics_short_term"}  # every other period aggregates hours


class RecorderDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path

    def known_ids(self, limit: int) -> dict[str, tuple[str, ...]]:
        """Entity ids with history and statistic ids, when each list is short enough
        to offer as a choice (a large home gets plain strings)."""
        found: dict[str, tuple[str, ...]] = {}
        try:
            with open_readonly(self.path) as db:
                for key, sql in (
                    ("entity_id", "SELECT entity_id FROM states_meta ORDER BY entity_id LIMIT ?"),
                    (
                        "statistic_ids",
                        "SELECT statistic_id FROM statistics_meta ORDER BY statistic_id LIMIT ?",
                    ),
                ):
                    ids = tuple(row[0] for row in db.execute(sql, (limit + 1,)) if row[0])
                    if 0 < len(ids) <= limit:
                        found[key] = ids
        except (QueryRefusedError, sqlite3.Error) as err:
            raise ToolError(str(err)) from err
        return found

    def history(
        self, entity_id: str, start: datetime, end: datetime, max_points: int
    ) -> list[dict[str, Any]]:
        try:
            with open_readonly(self.path) as db:
                meta = db.execute(
                    "SELECT metadata_id FROM states_meta WHERE entity_id = ?", (entity_id,)
                ).fetchone()
                if meta is None:
                    raise ToolError(f"the recorder has no history for {entity_id}")
                before = db.execute(
                    "SELECT state, last_updated_ts FROM states WHERE metadata_id = ? "
                    "AND last_updated_ts < ? ORDER BY last_updated_ts DESC LIMIT 1",
                    (meta[0], start.timestamp()),
                ).fetchall()
                rows = db.execute(
                    "SELECT state, last_updated_ts FROM states WHERE metadata_id = ? "
                    "AND last_updated_ts >= ? AND last_updated_ts < ? ORDER BY last_updated_ts",
                    (meta[0], start.timestamp(), end.timestamp()),
                ).fetchall()
        except QueryRefusedError as err:
            raise ToolError(str(err)) from err
        points = [(state, max(ts, start.timestamp())) for state, ts in before] + rows
        return [_point(state, ts) for state, ts in thin(points, max_points)]

    def statistics(
        self, statistic_ids: list[str], start: datetime, end: datetime, period: str
    ) -> dict[str, list[dict[str, Any]]]:
        table = _TABLES.get(period, "statistics")
        result: dict[str, list[dict[str, Any]]] = {}
        try:
            with open_readonly(self.path) as db:
                for statistic_id in statistic_ids:
                    meta = db.execute(
                        "SELECT id FROM statistics_meta WHERE statistic_id = ?", (statistic_id,)
                    ).fetchone()
                    if meta is None:
                        continue
                    rows = db.execute(
                        "SELECT start_ts, mean, min, max, state, sum FROM "  # noqa: S608
                        + table  # one of two fixed names, never user input
                        + " WHERE metadata_id = ? AND start_ts >= ? AND start_ts < ? "
                        "ORDER BY start_ts",
                        (meta[0], start.timestamp(), end.timestamp()),
                    ).fetchall()
                    result[statistic_id] = _aggregate(rows, period)
        except QueryRefusedError as err:
            raise ToolError(str(err)) from err
        return result


def _bucket(ts: float, period: str) -> float:
    if period in ("5minute", "hour"):
        return ts
    moment = datetime.fromtimestamp(ts, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.timestamp()


def _aggregate(rows: list[tuple[Any, ...]], period: str) -> list[dict[str, Any]]:
    """Hours into days, weeks or months: mean of means, extremes of extremes, the last
    state and sum (a sum is a running total) and the change over the bucket."""
    buckets: dict[float, list[tuple[Any, ...]]] = {}
    for row in rows:
        buckets.setdefault(_bucket(row[0], period), []).append(row)
    out: list[dict[str, Any]] = []
    previous_sum: float | None = None
    for start_ts, members in buckets.items():
        means = [m[1] for m in members if m[1] is not None]
        lows = [m[2] for m in members if m[2] is not None]
        highs = [m[3] for m in members if m[3] is not None]
        item: dict[str, Any] = {"start": _iso(start_ts)}
        if means:
            item["mean"] = sum(means) / len(means)
        if lows:
            item["min"] = min(lows)
        if highs:
            item["max"] = max(highs)
        last = members[-1]
        if last[4] is not None:
            item["state"] = last[4]
        if last[5] is not None:
            item["sum"] = last[5]
            if previous_sum is not None:
                item["change"] = last[5] - previous_sum
            previous_sum = last[5]
        out.append(item)
    return out


def thin(points: list[tuple[Any, float]], max_points: int) -> list[tuple[Any, float]]:
    """At most max_points, evenly spread, always keeping the first and the last."""
    if len(points) <= max_points:
        return points
    if max_points == 1:
        return points[-1:]
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def _iso(ts: float) -> str:
    # strftime on a struct_time: a day of history formats in a tenth of the time
    # datetime.isoformat takes (same text, seconds, UTC).
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def _point(state: Any, ts: float) -> dict[str, Any]:
    return {"state": state, "last_changed": _iso(ts)}
