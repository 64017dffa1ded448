"""Errors in OpenAI's error shape, on every route of the node.

OpenAI clients (the `openai` package, Open WebUI, Home Assistant's integrations) read
``{"error": {"message", "type", "param", "code"}}``; using the one shape everywhere,
control plane included, lets every client show the node's own message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
import json
import logging
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The OpenAI error "type" for each status family.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class ApiError(Exception):
    """A request the node answers with an error status and a reason."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """`details` are extra fields of the error object: figures a client acts on
        (a context overflow's token counts), so nobody parses them out of `message`."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                **self.details,
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self, path: str = "") -> web.Response:
        if path == "/v2" or path.startswith("/v2/"):
            # KServe v2 / Triton's shape, which tritonclient reads: {"error": "<message>"}.
            body: dict[str, Any] = {"error": self.message}
            return web.json_response(body, status=self.status, headers=self.headers)
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def error_response(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> web.Response:
    """An error response without raising (for places that return, like middlewares)."""
    return ApiError(status, message, code=code, param=param).response()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into an OpenAI-shaped body; never let a request take the node down."""
    try:
        return await handler(request)
    except ApiError as err:
        return err.response(request.path)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        # "route_not_found", never a bare "not_found": a client must tell a route this
        # node lacks (an older version) from a model or job it lacks.
        code = {404: "route_not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            err.status
        )
        message = {
            404: f"no route {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(err.status, err.reason)
        return ApiError(err.status, message, code=code, headers=_allow_header(err)).response(
            request.path
        )
    except Exception:
        _LOGGER.exception("unexpected error handling %s %s", request.method, request.path)
        return ApiError(
            500, "internal error in the node; see its log", code="internal_error"
        ).response(request.path)


def _allow_header(err: web.HTTPException) -> dict[str, str]:
    allow = err.headers.get("Allow")
    return {"Allow": allow} if allow else {}


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise ApiError(
            415,
            f"expected an application/json body, got {request.content_type}",
            code="unsupported_media_type",
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"body is not valid JSON: {err}", code="invalid_json") from err
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", code="invalid_json")
    return body


def reject_unknown_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    """Unknown fields are errors, so a typo never silently does nothing."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code="unknown_field",
            param=unknown[0],
        )
