"""A web server that hands out a model file slowly, so a download's progress shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

CHUNK = 256 * 1024


def slow_file_app(path: Path, *, seconds: float) -> web.Application:
    """Serves `path` at /<name> in about `seconds`, with its length announced."""
    size = path.stat().st_size
    pause = seconds / max(1, size // CHUNK)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                await response.write(chunk)
                await asyncio.sleep(pause)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get(f"/{path.name}", handler)
    return app
