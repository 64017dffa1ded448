"""Wiring of the LLM engines into the node: the model manager's life cycle, its snapshot
as a status source (status, events, /metrics), and model downloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import logging
import re
from typing import Any

import aiohttp
from aiohttp import web

from ..engines.llm.download import DownloadError
from ..engines.llm.models import (
    ModelManager,
    engine_settings,
    valid_model_file_name,
)
from ..engines.llm.offload import Offload
from .errors import ApiError, read_json_object, reject_unknown_fields
from .keys import NODE_KEY
from .openapi import describe

_LOGGER = logging.getLogger(__name__)

MANAGER_KEY = web.AppKey("llm_models", ModelManager)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(slots=True)
class Downloads:
    """Running downloads and their HTTP session (opened when the app starts)."""

    session: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


DOWNLOADS_KEY = web.AppKey("llm_downloads", Downloads)


_DOWNLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "url": {"type": "string"},
        "state": {"type": "string", "enum": ["downloading", "verifying", "done", "failed"]},
        "bytes_done": {"type": "integer"},
        "bytes_total": {"type": ["integer", "null"]},
        "fraction": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"]},
        "error_code": {
            "type": ["string", "null"],
            "enum": ["checksum_mismatch", "http_error", "connection_error", "invalid_model", None],
        },
        "sha256": {"type": ["string", "null"]},
    },
}


@describe(
    "Download a GGUF model from a URL into the models directory; answers its progress "
    "(follow it at /api/models/downloads/{name})",
    tag="models",
    request={
        "type": "object",
        "required": ["url", "name"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "format": "uri", "pattern": "^https?://[^\\s]+$"},
            "name": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*\\.gguf$",
                "description": "file name, ends in .gguf",
            },
            "sha256": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{64}$",
                "description": "64 hex digits; a mismatch fails",
            },
            "size_bytes": {
                "type": "integer",
                "minimum": 1,
                "description": "the file's size, to refuse a download that cannot fit",
            },
        },
    },
    response=_DOWNLOAD_SCHEMA,
    status=202,
    errors=(400, 409, 507),
)
async def download_model(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, {"url", "name", "sha256", "size_bytes"})
    url, name, sha256 = body.get("url"), body.get("name"), body.get("sha256")
    size = body.get("size_bytes")
    if (
        not isinstance(url, str)
        or not url.startswith(("http://", "https://"))
        or any(c.isspace() for c in url)
    ):
        raise ApiError(400, "url must be an http(s) URL", code="invalid_value", param="url")
    if not isinstance(name, str) or not valid_model_file_name(name):
        raise ApiError(400, "name must be a .gguf file name", code="invalid_value", param="name")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        raise ApiError(400, "sha256 must be 64 hex digits", code="invalid_value", param="sha256")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ApiError(
            400, "size_bytes must be a positive integer", code="invalid_value", param="size_bytes"
        )
    manager = request.app[MANAGER_KEY]
    if manager.models_dir is None:
        raise ApiError(409, "the node has no models directory", code="no_models_directory")
    running = manager.download_progress(name)
    if running is not None and running.state in ("downloading", "verifying"):
        if running.url != url:
            raise ApiError(
                409, f"{name} is downloading from another URL", code="download_in_progress"
            )
        return web.json_response(running.as_dict(), status=202)  # the same request again
    if manager.has_model_file(name):
        return web.json_response(
            {"name": name, "url": url, "state": "done", "fraction": 1.0, "error": None}
        )
    free = await asyncio.to_thread(manager.free_bytes_for, name)
    if size is not None and free is not None and size > free:
        raise ApiError(
            507,
            f"{name} needs {size} bytes; the models directory has {free} free",
            type="server_error",
            code="insufficient_storage",
        )
    try:
        progress = manager.begin_download(url, name=name, sha256=sha256)
    except ValueError as err:
        raise ApiError(409, str(err), code="download_in_progress") from err
    downloads = request.app[DOWNLOADS_KEY]
    assert downloads.session is not None
    task = asyncio.create_task(_logged(manager.finish_download(downloads.session, progress), url))
    downloads.tasks.add(task)
    task.add_done_callback(downloads.tasks.discard)
    return web.json_response(progress.as_dict(), status=202)


@describe(
    "The progress of a model download (the latest one of that file name)",
    tag="models",
    response=_DOWNLOAD_SCHEMA,
    errors=(404,),
)
async def model_download(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    progress = request.app[MANAGER_KEY].download_progress(name)
    if progress is None:
        raise ApiError(404, f"no download of {name}", code="download_not_found", param="name")
    return web.json_response(progress.as_dict())


async def _logged(coro: Any, url: str) -> None:
    try:
        await coro
    except (DownloadError, ValueError) as err:
        _LOGGER.warning("model download from %s failed: %s", url, err)


def setup_service(app: web.Application, manager: ModelManager | None = None) -> None:
    """The manager is built here (cheap) and started with the app; until then its
    `settings` may still be replaced (tests size the engines small)."""
    if manager is None:
        settings = app[NODE_KEY].settings
        manager = ModelManager(
            settings.data_dir / "models",
            [p for p in settings.models if p.suffix == ".gguf"],
            engine_settings(
                threads=settings.llm_threads,
                context=settings.llm_context,
                slots=settings.llm_slots,
                idle_unload_s=settings.llm_idle_unload_s,
                prompt_cache_mb=settings.llm_prompt_cache_mb,
                offload=Offload.parse(settings.fleet_offload) if settings.fleet_offload else None,
            ),
        )
    app[MANAGER_KEY] = manager
    app[DOWNLOADS_KEY] = Downloads()
    app.router.add_post("/api/models/download", download_model)
    app.router.add_get("/api/models/downloads/{name}", model_download)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[MANAGER_KEY]
    await manager.start()
    node = app[NODE_KEY]
    node.add_status_source(manager)
    downloads = app[DOWNLOADS_KEY]
    downloads.session = session = aiohttp.ClientSession()
    yield
    for task in list(downloads.tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await session.close()
    node.remove_status_source(manager)
    await manager.close()
