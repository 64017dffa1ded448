"""The control plane: health, status, heat target and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from typing import Any

from aiohttp import web

from ..heat.target import HEAT_MODES, HeatTarget
from ..runtime_config import FIELD_NAMES, ConfigError, apply_changes
from .errors import ApiError, read_json_object, reject_unknown_fields
from .keys import NODE_KEY
from .openapi import describe, register_schema

SSE_HEARTBEAT_S = 15.0

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
WORK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What the node is working on, summed over its engines",
    "required": ["tokens_per_s", "requests_active", "queue_depth", "jobs_pending"],
    "properties": {
        "tokens_per_s": {
            "type": "number",
            "minimum": 0,
            "description": "tokens generated per second, all chat models, recent window",
        },
        "requests_active": {**_COUNT, "description": "requests being generated now"},
        "queue_depth": {**_COUNT, "description": "requests admitted and waiting for a slot"},
        "jobs_pending": {**_COUNT, "description": "deferrable jobs not finished (queued+running)"},
        "jobs_running": {**_COUNT, "description": "jobs with items in flight"},
        "ttft_p95_s": {
            **_NUMBER_OR_NULL,
            "description": "95th percentile time to first token of recent requests, worst model",
        },
        "latency_p95_s": {
            **_NUMBER_OR_NULL,
            "description": "95th percentile whole-request time of recent requests, worst model",
        },
        "background": {
            "enum": ["heat", "deadline", "filler", "requests", "idle"],
            "description": "why background work runs: heat wanted, a job's deadline, filler "
            "heat, background API requests, or none runs",
        },
        "filler_items": {**_COUNT, "description": "filler work items run since the start"},
    },
}
register_schema("Work", WORK_SCHEMA)
STATUS_MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "state"],
    "description": "A model (kind chat or embedding), or a download in progress "
    "(kind download, state downloading/verifying/failed)",
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["chat", "embedding", "download"]},
        "state": {
            "enum": ["available", "loading", "loaded", "failed", "downloading", "verifying"],
        },
        "size_bytes": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"], "description": "why the last load failed"},
    },
}
register_schema("StatusModel", STATUS_MODEL_SCHEMA)
STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["node_id", "version", "api_version", "heat", "power_w", "energy_kwh"],
    "properties": {
        "node_id": {"type": "string"},
        "name": {"type": "string"},
        "version": {"type": "string"},
        "api_version": {"type": "string"},
        "hardware": {"type": "string"},
        "memory_bytes": {
            "type": ["integer", "null"],
            "description": "memory the models may use: the machine's, or its container's limit",
        },
        "uptime_s": {"type": "number"},
        "heat": {"$ref": "#/components/schemas/Heat"},
        "power_w": _NUMBER_OR_NULL,
        "energy_kwh": {"type": "number"},
        "intensity": {"type": "number", "minimum": 0, "maximum": 1},
        "temperatures": {"type": "object"},
        "work": {"$ref": "#/components/schemas/Work"},
        "models": {"type": "array", "items": {"$ref": "#/components/schemas/StatusModel"}},
    },
}
HEAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mode": {"type": "string", "enum": list(HEAT_MODES)},
        "target_w": {"type": "number", "minimum": 0},
        "max_power_w": {"type": "number"},
        "wanted": {"type": "boolean"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
register_schema("Heat", HEAT_SCHEMA)
register_schema("Status", STATUS_SCHEMA)
register_schema(
    "SafetyEvent",
    {
        "type": "object",
        "properties": {
            "kind": {"enum": ["chip_temperature", "max_power", "watchdog"]},
            "active": {"type": "boolean"},
            "value": _NUMBER_OR_NULL,
            "limit": _NUMBER_OR_NULL,
            "message": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
        },
    },
)


def heat_request_schema(app: web.Application) -> dict[str, Any]:
    limit = app[NODE_KEY].settings.max_power_w
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "mode": {"type": "string", "enum": list(HEAT_MODES)},
            "target_w": {
                "type": "number",
                "minimum": 0,
                "maximum": limit,
                "description": "up to the node's power limit; above the power cap in force "
                "(config max_power_w) it is held at the cap",
            },
        },
    }


@describe("Liveness: answers while the process runs; no token needed", tag="meta", public=True)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@describe("A snapshot of the node", tag="control", response=STATUS_SCHEMA)
async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].status())


@describe("The current heat target", tag="control", response=HEAT_SCHEMA)
async def get_heat(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return web.json_response(node.heat.as_dict(node.max_power_w))


@describe(
    "Set the heat target: mode heat/off and the watts wanted (0 to max power)",
    tag="control",
    request=heat_request_schema,
    response=HEAT_SCHEMA,
    errors=(400, 415),
)
async def put_heat(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json_object(request)
    reject_unknown_fields(body, {"mode", "target_w"})
    if not body:
        raise ApiError(400, "give mode and/or target_w", code="missing_field", param="mode")
    current = node.heat
    mode = body.get("mode", current.mode)
    if mode not in HEAT_MODES:
        raise ApiError(
            400,
            f"mode must be one of {', '.join(HEAT_MODES)}, got {mode!r}",
            code="invalid_value",
            param="mode",
        )
    target_w = body.get("target_w", current.target_w)
    limit_w = node.settings.max_power_w
    # bool is an int in Python: reject it explicitly so `true` is not 1 W.
    if isinstance(target_w, bool) or not isinstance(target_w, int | float):
        raise ApiError(
            400, "target_w must be a number of watts", code="invalid_type", param="target_w"
        )
    if not math.isfinite(target_w) or not 0 <= target_w <= limit_w:
        raise ApiError(
            400,
            f"target_w must be between 0 and {limit_w:g} W (max power), got {target_w}",
            code="out_of_range",
            param="target_w",
        )
    # Within the node's limit but above the cap the user set: the cap holds (as a lowered
    # cap lowers a standing target).
    target_w = min(float(target_w), node.max_power_w)
    node.set_heat(HeatTarget(mode=mode, target_w=target_w))
    return web.json_response(node.heat.as_dict(node.max_power_w))


@describe(
    "Server-sent events: 'status' with the full status on connect and on every change",
    tag="control",
    response={
        "type": "string",
        "description": "a stream of `event: <name>` + `data: <JSON>` blocks, never ending: "
        "`status` (a Status, on connect and on every change), `job` (a Job, on state "
        "changes and with progress), `safety` (a SafetyEvent); `: keep-alive` comments "
        "every 15 s",
        "x-events": {
            "status": {"$ref": "#/components/schemas/Status"},
            "job": {"$ref": "#/components/schemas/Job"},
            "safety": {"$ref": "#/components/schemas/SafetyEvent"},
        },
    },
    response_type="text/event-stream",
)
async def events(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Reverse proxies (Home Assistant ingress, nginx) must not buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = node.events.subscribe()
    try:
        await response.write(_sse("status", node.status()))
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(_sse(event.name, event.data))
    except ConnectionResetError:
        pass  # the subscriber went away; nothing to tell anyone
    finally:
        node.events.unsubscribe(queue)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
    return response


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "serve_requests": {"type": "boolean"},
        "background_jobs": {"type": "boolean"},
        "filler": {"type": "boolean"},
        "max_power_w": {"type": "number", "exclusiveMinimum": 0},
        "max_power_limit_w": {"type": "number", "readOnly": True},
    },
}
register_schema("Config", CONFIG_SCHEMA)


@describe("What the node may run and its power cap", tag="control", response=CONFIG_SCHEMA)
async def get_config(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return web.json_response(node.config.as_dict(node.settings.max_power_w))


def config_request_schema(app: web.Application) -> dict[str, Any]:
    limit = app[NODE_KEY].settings.max_power_w
    properties = {k: v for k, v in CONFIG_SCHEMA["properties"].items() if not v.get("readOnly")}
    properties["max_power_w"] = {**properties["max_power_w"], "maximum": limit}
    return {"type": "object", "additionalProperties": False, "properties": properties}


@describe(
    "Change what the node may run or its power cap (any subset of fields); persisted",
    tag="control",
    request=config_request_schema,
    response=CONFIG_SCHEMA,
    errors=(400, 415),
)
async def patch_config(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json_object(request)
    reject_unknown_fields(body, set(FIELD_NAMES))
    try:
        config = apply_changes(node.config, body, max_power_limit_w=node.settings.max_power_w)
    except ConfigError as err:
        raise ApiError(400, str(err), code="invalid_value", param=err.field) from err
    await node.set_config(config)
    return web.json_response(config.as_dict(node.settings.max_power_w))


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/status", get_status)
    app.router.add_get("/api/heat", get_heat)
    app.router.add_put("/api/heat", put_heat)
    app.router.add_get("/api/config", get_config)
    app.router.add_patch("/api/config", patch_config)
    app.router.add_get("/api/events", events)
