"""Bearer-token authentication on every route but /health."""

from __future__ import annotations

import hmac

from aiohttp import web

from .errors import ApiError, Handler

PUBLIC_PATHS = frozenset({"/health"})
# The MCP bridge checks its own scoped tokens (api/mcp.py); the node token works there too.
SELF_AUTHENTICATED_PATHS = frozenset({"/mcp", "/mcp/sse", "/mcp/messages"})
TOKEN_KEY = web.AppKey("token", str)
INGRESS_REQUEST = "heatcompute.ingress"
"""Set on a request that came through Home Assistant's ingress proxy (ingress/access.py):
Home Assistant has authenticated the person, so no token is asked for."""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path in PUBLIC_PATHS
        or request.path in SELF_AUTHENTICATED_PATHS
        or request.method == "OPTIONS"
        or request.get(INGRESS_REQUEST)
    ):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' (the token is in the "
            "node's data directory, file 'token')",
            code="missing_token",
            headers={"WWW-Authenticate": 'Bearer realm="heatcompute"'},
        )
    # Constant-time comparison: the token guards a service reachable on the LAN.
    if not hmac.compare_digest(presented.strip().encode(), request.app[TOKEN_KEY].encode()):
        raise ApiError(
            401,
            "invalid bearer token",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer realm="heatcompute", error="invalid_token"'},
        )
    return await handler(request)
