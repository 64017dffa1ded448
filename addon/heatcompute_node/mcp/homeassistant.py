"""Home Assistant tools: entities, a state, history and long-term statistics.

Live data (entities, states) comes from Home Assistant's API. History and statistics come
from the recorder database when the node has its file (setting mcp_recorder_db; fast, no
token; see recorder_db.py), else from the API (REST history, the WebSocket
``recorder/statistics_during_period``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
import json
import re
from typing import Any

from .ha_api import HomeAssistantApi
from .recorder_db import RecorderDatabase, thin
from .tools import Arguments, Choices, Limits, Tool, ToolError, integer, schema, string, strings

PERIODS = ("5minute", "hour", "day", "week", "month")
_ENTITY_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_AREA = re.compile(r"^[\w .'-]{1,100}$")
MAX_HISTORY_POINTS = 1000
MAX_CHOICES = 200  # more ids than this stay a free string: the list would cost too much


def _entity_id(value: str) -> str:
    if not _ENTITY_ID.match(value):
        raise ToolError(f"{value!r} is not an entity id such as sensor.kitchen_temperature")
    return value


def _time(arguments: Arguments, name: str, default: datetime) -> datetime:
    value = arguments.get(name)
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ToolError(
            f"{name} must be an ISO 8601 time such as 2026-11-30T08:00:00+01:00"
        ) from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(arguments: Arguments) -> tuple[datetime, datetime]:
    end = _time(arguments, "end", datetime.now(UTC))
    start = _time(arguments, "start", end - timedelta(days=1))
    if start >= end:
        raise ToolError("start must be before end")
    return start, end


class HomeAssistantTools:
    def __init__(
        self, api: HomeAssistantApi | None, recorder: RecorderDatabase | None, limits: Limits
    ) -> None:
        self.api = api
        self.recorder = recorder
        self.limits = limits

    def tools(self) -> list[Tool]:
        """The tools that can work: live ones need the API, history either source."""
        tools = self._all_tools()
        if self.api is None:
            tools = [t for t in tools if t.name not in ("ha_list_entities", "ha_get_state")]
        if self.api is None and self.recorder is None:
            return []
        return tools

    def _all_tools(self) -> list[Tool]:
        start = string("ISO 8601 start time (default: 24 hours before end)")
        end = string("ISO 8601 end time (default: now)")
        return [
            Tool(
                name="ha_list_entities",
                title="List Home Assistant entities",
                description=(
                    "Entities with their name, state and unit; filter by domain (sensor, "
                    "light, ...) or area."
                ),
                scope="homeassistant",
                input_schema=schema(domain=string("e.g. sensor"), area=string("area name or id")),
                run=self.list_entities,
            ),
            Tool(
                name="ha_get_state",
                title="Get an entity's state",
                description="The current state and attributes of one entity.",
                scope="homeassistant",
                input_schema=schema(
                    ("entity_id",), entity_id=string("e.g. sensor.kitchen_temperature")
                ),
                run=self.get_state,
            ),
            Tool(
                name="ha_get_history",
                title="Get an entity's history",
                description=(
                    "How an entity's state changed between start and end (at most "
                    "max_points points, evenly thinned)."
                ),
                scope="homeassistant",
                input_schema=schema(
                    ("entity_id",),
                    entity_id=string("e.g. sensor.kitchen_temperature"),
                    start=start,
                    end=end,
                    max_points=integer(
                        "most points returned (default 200)", minimum=1, maximum=MAX_HISTORY_POINTS
                    ),
                ),
                run=self.get_history,
                choices=self._choices("entity_id"),
            ),
            Tool(
                name="ha_get_statistics",
                title="Get long-term statistics",
                description=(
                    "Long-term statistics (mean, min, max, state, sum, change) of sensors "
                    "such as energy or temperature, per 5minute, hour, day, week or month."
                ),
                scope="homeassistant",
                input_schema=schema(
                    ("statistic_ids",),
                    statistic_ids=strings("statistic ids, e.g. sensor.energy_total"),
                    start=start,
                    end=end,
                    period=string("bucket size (default hour)", enum=PERIODS),
                ),
                run=self.get_statistics,
                choices=self._choices("statistic_ids"),
            ),
        ]

    def _choices(self, key: str) -> Choices | None:
        """From the recorder's file: the ids that exist, offered as the only choices."""
        recorder = self.recorder
        if recorder is None:
            return None

        def choices() -> dict[str, tuple[str, ...]]:
            known = recorder.known_ids(MAX_CHOICES)
            return {key: known[key]} if key in known else {}

        return choices

    def _require_api(self) -> HomeAssistantApi:
        if self.api is None:
            raise ToolError(
                "Home Assistant's API is not configured (settings mcp_ha_url and mcp_ha_token)"
            )
        return self.api

    async def list_entities(self, arguments: Arguments) -> dict[str, Any]:
        api = self._require_api()
        domain = arguments.get("domain")
        area = arguments.get("area")
        in_area: set[str] | None = None
        if area is not None:
            if not _AREA.match(area):
                raise ToolError("area must be an area's name or id")
            # The template engine resolves names and ids alike; the value goes in as JSON,
            # so it can't end the template string.
            rendered = await api.post(
                "/template", {"template": "{{ area_entities(" + json.dumps(area) + ") | tojson }}"}
            )
            in_area = set(json.loads(rendered) if isinstance(rendered, str) else rendered)
        states = await api.get("/states")
        entities = [
            {
                "entity_id": s["entity_id"],
                "name": s.get("attributes", {}).get("friendly_name"),
                "state": s.get("state"),
                "unit": s.get("attributes", {}).get("unit_of_measurement"),
            }
            for s in states
            if (domain is None or s["entity_id"].split(".", 1)[0] == domain)
            and (in_area is None or s["entity_id"] in in_area)
        ]
        entities.sort(key=lambda e: e["entity_id"])
        cap = self.limits.max_list_entries
        return {"entities": entities[:cap], "truncated": len(entities) > cap}

    async def get_state(self, arguments: Arguments) -> dict[str, Any]:
        state: dict[str, Any] = await self._require_api().get(
            f"/states/{_entity_id(arguments['entity_id'])}"
        )
        return state

    async def get_history(self, arguments: Arguments) -> dict[str, Any]:
        entity_id = _entity_id(arguments["entity_id"])
        start, end = _window(arguments)
        max_points = arguments.get("max_points", 200)
        if self.recorder is not None:
            points = await asyncio.to_thread(
                self.recorder.history, entity_id, start, end, max_points
            )
        else:
            raw = await self._require_api().get(
                f"/history/period/{start.isoformat()}",
                {
                    "filter_entity_id": entity_id,
                    "end_time": end.isoformat(),
                    "minimal_response": "",
                    "no_attributes": "",
                },
            )
            series = raw[0] if raw else []
            thinned = thin([(p.get("state"), p.get("last_changed")) for p in series], max_points)
            points = [{"state": s, "last_changed": t} for s, t in thinned]
        return {
            "entity_id": entity_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "points": points,
        }

    async def get_statistics(self, arguments: Arguments) -> dict[str, Any]:
        ids = [
            _entity_id(i) if "." in i and ":" not in i else i for i in arguments["statistic_ids"]
        ]
        if not ids:
            raise ToolError("name at least one statistic id")
        start, end = _window(arguments)
        period = arguments.get("period", "hour")
        if self.recorder is not None:
            found = await asyncio.to_thread(self.recorder.statistics, ids, start, end, period)
        else:
            found = await self._require_api().websocket_command(
                {
                    "type": "recorder/statistics_during_period",
                    "start_time": start.isoformat(),
                    "end_time": end.isoformat(),
                    "statistic_ids": ids,
                    "period": period,
                    "types": ["mean", "min", "max", "state", "sum", "change"],
                }
            )
            found = {sid: [_api_row(r) for r in rows] for sid, rows in (found or {}).items()}
        missing = [i for i in ids if i not in found]
        return {"period": period, "statistics": found, "unknown_ids": missing}


def _api_row(row: dict[str, Any]) -> dict[str, Any]:
    """The WebSocket API gives times in ms since the epoch; the tool speaks ISO 8601."""
    out = {k: v for k, v in row.items() if k not in ("start", "end") and v is not None}
    out["start"] = datetime.fromtimestamp(row["start"] / 1000, UTC).isoformat(timespec="seconds")
    return out
