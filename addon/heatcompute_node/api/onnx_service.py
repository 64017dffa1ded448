"""Wiring of the ONNX engine into the node, all in one place: its key, its life cycle,
and its snapshot as a status source (/api/status, events and /metrics read it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..engines.onnx.engine import OnnxEngine
from .keys import NODE_KEY

ONNX_KEY = web.AppKey("onnx_engine", OnnxEngine)


def setup_service(app: web.Application, engine: OnnxEngine | None = None) -> None:
    """Build the engine (cheap; models load when the app starts)."""
    if engine is None:
        settings = app[NODE_KEY].settings
        engine = OnnxEngine(settings.onnx_repository_dir, threads=settings.llm_threads)
    app[ONNX_KEY] = engine
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    engine, node = app[ONNX_KEY], app[NODE_KEY]
    await engine.start()
    node.add_status_source(engine)
    yield
    node.remove_status_source(engine)
    await engine.close()
