"""A stand-in for Home Assistant's ingress proxy, for testing the dashboard.

Like the real one (Supervisor's ``api/ingress.py``), it serves the add-on under
``/api/hassio_ingress/<token>/``, strips that prefix, forwards to the add-on's ingress
port with ``X-Ingress-Path`` set to the prefix, and streams the answer back unbuffered
(server-sent events, streamed chat). It does not authenticate anyone: Home Assistant
would have, before the request reached it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# Hop-by-hop headers a proxy must not forward, and the length it recomputes.
_DROP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class IngressProxy:
    def __init__(self, upstream: str, token: str = "Xk3v_test") -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = f"/api/hassio_ingress/{token}"
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._forward)
        app.cleanup_ctx.append(self._session_life)
        return app

    async def _session_life(self, _app: web.Application) -> AsyncIterator[None]:
        yield
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        headers["X-Ingress-Path"] = self.prefix
        url = f"{self.upstream}/{request.match_info['tail']}"
        async with self._session.request(
            request.method,
            url,
            params=request.query,
            headers=headers,
            data=await request.read(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _DROP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
