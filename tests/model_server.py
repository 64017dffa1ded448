"""A model host on 127.0.0.1 for download tests: serves files as a hub would, and can
hold back the second half of a file until the test lets it go (so a test sees a download
in the middle, without timing luck)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(slots=True)
class ModelHost:
    files: dict[str, bytes]
    hold_back: bool = False
    """Send half of each file, then wait for `release` before the rest."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    half_sent: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[str] = field(default_factory=list)
    _server: TestServer | None = None

    def url(self, name: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        self.release.set()  # a held response must not keep the server from closing
        if self._server is not None:
            await self._server.close()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        body = self.files.get(name)
        if body is None:
            raise web.HTTPNotFound
        response = web.StreamResponse()
        response.content_length = len(body)
        await response.prepare(request)
        if self.hold_back:
            await response.write(body[: len(body) // 2])
            self.half_sent.set()
            await self.release.wait()
            await response.write(body[len(body) // 2 :])
        else:
            await response.write(body)
        await response.write_eof()
        return response
