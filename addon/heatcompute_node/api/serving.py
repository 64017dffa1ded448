"""The "Serve requests" switch (`serve_requests` in /api/config) at the door.

While it is off the node answers no interactive request (chat, completions,
embeddings): each is refused with 503 `not_serving`, so a client (Home Assistant's
router) takes it to another node. Listing models, the control plane and background
jobs go on. Handlers say they serve requests with `@interactive`; the check is here,
once, rather than in each of them. Here too the node counts the requests it is serving
(`PeopleServed`): background work without knobs of its own (indexing) starts nothing
new while one is in flight.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import ApiError, Handler
from .keys import NODE_KEY

_MARK = "__heatcompute_interactive__"


def interactive[F: Handler](handler: F) -> F:
    """Mark a handler as an interactive request: refused while serving is off."""
    setattr(handler, _MARK, True)
    return handler


def is_interactive(handler: Any) -> bool:
    return bool(getattr(handler, _MARK, False))


class PeopleServed:
    """Interactive requests in flight on this node, whatever engine serves them."""

    def __init__(self) -> None:
        self.in_flight = 0


PEOPLE_KEY = web.AppKey("people_served", PeopleServed)


@web.middleware
async def serving_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_interactive(request.match_info.handler):
        return await handler(request)
    if not request.app[NODE_KEY].config.serve_requests:
        raise ApiError(
            503,
            "this node does not serve requests now: its 'serve_requests' switch is off",
            code="not_serving",
        )
    people = request.app.get(PEOPLE_KEY)
    if people is None:
        return await handler(request)
    people.in_flight += 1
    try:
        return await handler(request)
    finally:
        people.in_flight -= 1
