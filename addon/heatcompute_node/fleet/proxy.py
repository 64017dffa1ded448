"""The lead's /v1 for its split model: forwarded to the engine process, errors made clear.

The lead's OpenAI routes stay as they are; requests naming the split model are taken
here before them and passed to the engine process (the node's own engine, so
continuous batching, streaming, tools and the error shapes are the usual ones). What
only the fleet can know is said here: a worker lost under a running request (503
``fleet_worker_lost``, or a final ``error`` event in a stream), a split being rebuilt
(503 ``model_loading`` with Retry-After), a model that does not fit without its
workers (503 ``model_unavailable``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import aiohttp
from aiohttp import web

from ..api.errors import ApiError
from .lead import Lead

SPLIT_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
LOAD_WAIT_S = 10.0
REBUILD_RETRY_AFTER_S = 3


def requested_model(body: bytes) -> str | None:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None  # the route's own handler says what is wrong with it
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else None


async def forward(request: web.Request, body: bytes, lead: Lead) -> web.StreamResponse:
    # Unavailable: say so at once, so a router fails over without waiting.
    engine = None if lead.state == "unavailable" else await lead.wait_ready(LOAD_WAIT_S)
    if engine is None:
        raise _not_serving(lead)
    with lead.request():
        try:
            async with lead.session.post(
                engine.base_url + request.path,
                data=body,
                headers={**engine.headers, "Content-Type": "application/json"},
            ) as upstream:
                if upstream.content_type != "text/event-stream":
                    payload = await upstream.read()
                    return web.Response(
                        body=payload,
                        status=upstream.status,
                        content_type=upstream.content_type,
                        headers=_passed_headers(upstream),
                    )
                return await _stream(request, upstream, lead)
        except aiohttp.ClientError as err:
            raise _lost(lead, err) from err


async def _stream(
    request: web.Request, upstream: aiohttp.ClientResponse, lead: Lead
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, headers=_passed_headers(upstream))
    response.content_type = "text/event-stream"
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except aiohttp.ClientError as err:
        # Mid-stream the status is sent: the OpenAI client raises on an error event.
        error = _lost(lead, err)
        with contextlib.suppress(ConnectionResetError):
            await response.write(f"data: {json.dumps(error.body())}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def _passed_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k in ("Retry-After", "Cache-Control")}


def _lost(lead: Lead, err: Exception) -> ApiError:
    reason = lead.error or f"the engine process of {lead.model.id} stopped ({err})"
    return ApiError(
        503,
        f"the request failed: {reason}; the model is being served again without the "
        "lost worker if it fits, try again",
        code="fleet_worker_lost",
        headers={"Retry-After": str(REBUILD_RETRY_AFTER_S)},
        details={"model": lead.model.id},
    )


def _not_serving(lead: Lead) -> ApiError:
    if lead.state == "unavailable":
        return ApiError(
            503,
            lead.error or f"{lead.model.id} is unavailable",
            code="model_unavailable",
            details={"model": lead.model.id},
        )
    return ApiError(
        503,
        f"model {lead.model.id!r} is being split over the fleet; try again in "
        f"{REBUILD_RETRY_AFTER_S} s",
        code="model_loading",
        headers={"Retry-After": str(REBUILD_RETRY_AFTER_S)},
        details={"model": lead.model.id, "retry_after_s": REBUILD_RETRY_AFTER_S},
    )
