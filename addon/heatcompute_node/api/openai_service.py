"""Wiring of the LLM engines into the node: the model manager's life cycle, its figures
in /api/status and /metrics, and model downloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import logging
from typing import Any

import aiohttp
from aiohttp import web

from ..engines.llm.download import DownloadError
from ..engines.llm.models import (
    ModelManager,
    engine_settings,
    valid_model_file_name,
)
from .errors import ApiError, read_json_object, reject_unknown_fields
from .keys import NODE_KEY
from .openapi import describe

_LOGGER = logging.getLogger(__name__)

MANAGER_KEY = web.AppKey("llm_models", ModelManager)


@dataclass(slots=True)
class _Downloads:
    """Running downloads and their HTTP session (opened when the app starts)."""

    session: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


_DOWNLOADS_KEY = web.AppKey("llm_downloads", _Downloads)


class LlmStatus:
    """Adds the LLM engines' figures to the node's status (and so to /metrics)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def contribute(self, status: dict[str, Any]) -> None:
        stats = [
            (e.id, e.chat.scheduler.stats()) for e in self._manager.entries() if e.chat is not None
        ]
        work = status.setdefault("work", {})
        work["tokens_per_s"] = round(sum(s.tokens_per_s for _, s in stats), 2)
        work["requests_active"] = work.get("requests_active", 0) + sum(
            s.requests_active for _, s in stats
        )
        work["queue_depth"] = work.get("queue_depth", 0) + sum(s.queue_depth for _, s in stats)
        work["ttft_p95_s"] = _worst(s.ttft_p95_s for _, s in stats)
        work["latency_p95_s"] = _worst(s.latency_p95_s for _, s in stats)
        status["llm"] = {
            model_id: {
                "tokens_per_s": s.tokens_per_s,
                "prompt_tokens_per_s": s.prompt_tokens_per_s,
                "requests_active": s.requests_active,
                "queue_depth": s.queue_depth,
                "ttft_p50_s": s.ttft_p50_s,
                "ttft_p95_s": s.ttft_p95_s,
                "latency_p50_s": s.latency_p50_s,
                "latency_p95_s": s.latency_p95_s,
                "tokens_per_request": s.tokens_per_request,
                "requests_total": s.requests_total,
                "tokens_total": s.tokens_total,
                "cached_prompt_tokens_total": s.cached_prompt_tokens_total,
                "kv_cells_used": s.kv_cells_used,
                "kv_cells_total": s.kv_cells_total,
                "faults": s.faults,
                "knobs": {
                    "max_background": s.knobs.max_background,
                    "background_threads": s.knobs.background_threads,
                    "duty_cycle": s.knobs.duty_cycle,
                },
            }
            for model_id, s in stats
        }
        status.setdefault("models", []).extend(self._manager.status())


def _worst(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@describe(
    "Download a GGUF model from a URL into the models directory (progress in /api/status)",
    tag="models",
    request={
        "type": "object",
        "required": ["url", "name"],
        "properties": {
            "url": {"type": "string"},
            "name": {"type": "string", "description": "file name, ends in .gguf"},
            "sha256": {"type": "string"},
        },
    },
    errors=(400,),
)
async def download_model(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, {"url", "name", "sha256"})
    url, name, sha256 = body.get("url"), body.get("name"), body.get("sha256")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ApiError(400, "url must be an http(s) URL", code="invalid_value", param="url")
    if not isinstance(name, str) or not valid_model_file_name(name):
        raise ApiError(400, "name must be a .gguf file name", code="invalid_value", param="name")
    if sha256 is not None and (not isinstance(sha256, str) or len(sha256) != 64):
        raise ApiError(400, "sha256 must be 64 hex digits", code="invalid_value", param="sha256")
    downloads = request.app[_DOWNLOADS_KEY]
    assert downloads.session is not None
    coro = request.app[MANAGER_KEY].download(downloads.session, url, name=name, sha256=sha256)
    task = asyncio.create_task(_logged(coro, url))
    downloads.tasks.add(task)
    task.add_done_callback(downloads.tasks.discard)
    return web.json_response({"name": name, "state": "downloading"}, status=202)


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
            ),
        )
    app[MANAGER_KEY] = manager
    app[_DOWNLOADS_KEY] = _Downloads()
    app.router.add_post("/api/models/download", download_model)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[MANAGER_KEY]
    await manager.start()
    app[NODE_KEY].add_status_contributor(LlmStatus(manager))
    downloads = app[_DOWNLOADS_KEY]
    downloads.session = session = aiohttp.ClientSession()
    yield
    for task in list(downloads.tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await session.close()
    await manager.close()
