"""/api/jobs: deferrable jobs that run when heat is wanted, and always by their deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..heat.job_runner import JobRunner
from ..heat.jobs import JOB_KINDS, JOB_STATES, PRIORITIES, Job, JobError, parse_job_request
from ..heat.service import HeatService, QueueFull
from .errors import ApiError, read_json_object
from .index import INDEX_KEY
from .keys import NODE_KEY
from .openapi import describe, register_path_parameter, register_schema
from .request_schemas import JOB_REQUEST
from .serving import PEOPLE_KEY, PeopleServed

HEAT_SERVICE_KEY = web.AppKey("heat_service", HeatService)
# Refusals for a folder the node doesn't have: 404. A model it doesn't have stays a 400
# (`model_not_available`): Home Assistant reads a 404 as an API the node lacks.
_NOT_HERE = frozenset({"folder_not_allowed", "folder_not_found", "empty_folder"})
MAX_RESULTS_PAGE = 1000
DEFAULT_RESULTS_PAGE = 100

_TIME = {"type": ["string", "null"], "format": "date-time"}
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "job"},
        "kind": {"type": "string", "enum": list(JOB_KINDS)},
        "model": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": list(JOB_STATES)},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "deadline": _TIME,
        "deadline_missed": {"type": "boolean"},
        "created_at": _TIME,
        "started_at": _TIME,
        "finished_at": _TIME,
        "progress": {"type": "object"},
        "usage": {"type": "object"},
        "energy": {"type": "object"},
        "error": {"type": ["string", "null"]},
        "results": {"type": "array", "items": {"type": "object"}},
        "results_next_offset": {"type": ["integer", "null"]},
    },
}
register_schema("Job", JOB_SCHEMA)
_JOB_REF = {"$ref": "#/components/schemas/Job"}
register_path_parameter("job_id", {"type": "string", "pattern": "^job_[0-9a-f]{16}$"})
_DELETED = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "job.deleted"},
        "deleted": {"const": True},
    },
}


def _service(request: web.Request) -> HeatService:
    return request.app[HEAT_SERVICE_KEY]


@describe(
    "Queue a job: batch chat, batch completions, embeddings (texts or a folder) or "
    "read_text (a folder of images)",
    tag="jobs",
    request=JOB_REQUEST,
    response=_JOB_REF,
    errors=(400, 404, 415, 429),
)
async def create_job(request: web.Request) -> web.Response:
    service = _service(request)
    body = await read_json_object(request)
    try:
        job = await service.submit(parse_job_request(body, now=service.clock()))
    except JobError as err:
        status = 404 if err.code in _NOT_HERE else 400
        raise ApiError(
            status, str(err), type="invalid_request_error", code=err.code, param=err.param
        ) from err
    except QueueFull as err:
        raise ApiError(429, str(err), code="job_queue_full", headers={"Retry-After": "60"}) from err
    return web.json_response(job.as_dict(service.clock()))


@describe(
    "List jobs, newest first (optional ?state=queued|running|... and ?limit=)",
    tag="jobs",
    response={"type": "object", "properties": {"data": {"type": "array", "items": _JOB_REF}}},
    errors=(400,),
)
async def list_jobs(request: web.Request) -> web.Response:
    service = _service(request)
    state = request.query.get("state")
    if state is not None and state not in JOB_STATES:
        raise ApiError(
            400,
            f"state must be one of {', '.join(JOB_STATES)}",
            code="invalid_value",
            param="state",
        )
    limit = _int_query(request, "limit", 100, 1, 1000)
    jobs = sorted(service.jobs.jobs.values(), key=lambda job: job.created_at, reverse=True)
    now = service.clock()
    data = [job.as_dict(now) for job in jobs if state is None or job.state == state][:limit]
    return web.json_response({"object": "list", "data": data})


@describe(
    "One job with its results in item order (paged: ?offset=&limit=, at most 1000)",
    tag="jobs",
    response=_JOB_REF,
    errors=(400, 404),
)
async def get_job(request: web.Request) -> web.Response:
    service = _service(request)
    job = _job(request)
    offset = _int_query(request, "offset", 0, 0, 10**9)
    limit = _int_query(request, "limit", DEFAULT_RESULTS_PAGE, 1, MAX_RESULTS_PAGE)
    executor = service.jobs
    results = await asyncio.to_thread(executor.store.results, job.id, offset, limit)
    body = job.as_dict(service.clock())
    body["results"] = results
    more = len(results) == limit and offset + limit < job.done_items
    body["results_next_offset"] = offset + limit if more else None
    return web.json_response(body)


@describe(
    "Cancel a queued or running job (results so far are kept); delete a finished one",
    tag="jobs",
    response={"anyOf": [_JOB_REF, _DELETED]},
    errors=(404,),
)
async def delete_job(request: web.Request) -> web.Response:
    service = _service(request)
    job = _job(request)
    if job.terminal:
        await service.jobs.delete(job)
        return web.json_response({"id": job.id, "object": "job.deleted", "deleted": True})
    await service.jobs.cancel(job)
    return web.json_response(job.as_dict(service.clock()))


def _job(request: web.Request) -> Job:
    job_id = request.match_info["job_id"]
    job = _service(request).jobs.jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}", code="job_not_found", param="job_id")
    return job


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            f"{name} must be a whole number from {low} to {high}",
            code="invalid_value",
            param=name,
        )
    return value


def setup(app: web.Application, runner: JobRunner) -> None:
    """Routes, and the heat service started after (and stopped before) the node."""
    people = app[PEOPLE_KEY] = PeopleServed()
    app[HEAT_SERVICE_KEY] = HeatService(
        app[NODE_KEY], runner, people_waiting=lambda: people.in_flight > 0
    )
    app.router.add_post("/api/jobs", create_job)
    app.router.add_get("/api/jobs", list_jobs)
    app.router.add_get("/api/jobs/{job_id}", get_job)
    app.router.add_delete("/api/jobs/{job_id}", delete_job)
    app.cleanup_ctx.append(_heat_lifecycle)


async def _heat_lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[HEAT_SERVICE_KEY]
    # The document index (started before) hands its backlog to the planner as heat work.
    await service.start(index=app.get(INDEX_KEY))
    yield
    await service.stop()
