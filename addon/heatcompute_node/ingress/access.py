"""Who may use the dashboard port: only Home Assistant's ingress proxy.

The add-on's ingress port serves the dashboard and the node's API without a token,
because Home Assistant has already authenticated the person behind the proxy; so it
must answer no one but the proxy (the Supervisor's address 172.30.32.2). Requests on
the API port are untouched: they still need the bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..api.auth import INGRESS_REQUEST
from ..api.errors import ApiError, Handler


@dataclass(frozen=True, slots=True)
class IngressAccess:
    port: int
    allowed: frozenset[str]


INGRESS_ACCESS_KEY = web.AppKey("ingress_access", IngressAccess)


def arrived_on(request: web.Request) -> int | None:
    """The local port the request came in on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else None


@web.middleware
async def ingress_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = request.app.get(INGRESS_ACCESS_KEY)
    if access is None or arrived_on(request) != access.port:
        return await handler(request)
    if request.remote not in access.allowed:
        raise ApiError(
            403,
            "the dashboard answers only Home Assistant's ingress proxy; open it from "
            "Home Assistant's sidebar",
            code="ingress_only",
        )
    request[INGRESS_REQUEST] = True
    return await handler(request)
