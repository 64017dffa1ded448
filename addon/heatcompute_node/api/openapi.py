"""/openapi.json, built from the routes the app really has.

Each handler carries its own description (`@describe`), and the document is generated
from the router at request time, so a route can't exist without appearing here (a test
checks that every route is described).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .. import __version__

F = TypeVar("F", bound=Callable[..., Any])

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
                # Figures some errors carry beside the sentence (code context_length_exceeded,
                # model_loading), so clients need not parse the message.
                "prompt_tokens": {"type": "integer", "description": "tokens of the prompt"},
                "context_length": {
                    "type": "integer",
                    "description": "tokens the model's context holds per request",
                },
                "max_tokens": {
                    "type": ["integer", "null"],
                    "description": "the answer's length asked for (null: as long as fits)",
                },
                "input_index": {"type": "integer", "description": "the embeddings input"},
                "model": {"type": "string"},
                "retry_after_s": {"type": "integer", "description": "as the Retry-After header"},
            },
        }
    },
}


_SCHEMAS: dict[str, dict[str, Any]] = {"Error": ERROR_SCHEMA}
_BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {}


def register_path_parameter(name: str, schema: dict[str, Any]) -> None:
    """The schema of ``{name}`` in every path (default: any string)."""
    _PATH_PARAMETERS[name] = schema


def path_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """One route's path parameter, for `describe(parameters=...)`."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def register_schema(name: str, schema: dict[str, Any]) -> None:
    """Make a schema referable as ``#/components/schemas/<name>``."""
    _SCHEMAS[name] = schema


type RequestSchema = dict[str, Any] | Callable[[web.Application], dict[str, Any]]
"""A body schema, or one built from the app (bounds that depend on the node's settings)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDoc:
    summary: str
    tag: str
    request: RequestSchema | None = None
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    response_type: str = "application/json"
    streams: bool = False
    """With ``"stream": true`` the answer is server-sent events instead of JSON."""
    public: bool = False
    errors: tuple[int, ...] = ()
    status: int = 200
    error_schema: str = "Error"
    """The component schema of its error bodies: each protocol answers in its own shape
    (OpenAI's by default, Triton's on /v2, JSON-RPC's on /mcp)."""
    empty: tuple[int, ...] = ()
    """Statuses answered without a body (an MCP notification's 202)."""
    parameters: tuple[dict[str, Any], ...] = ()
    """Query parameters, and path parameters whose schema is narrower than a string."""
    request_types: tuple[str, ...] = ("application/json",)
    """Media types the request body may come as, each with ``request`` as its schema
    unless it is a binary type (an image: any bytes)."""


def describe(
    summary: str,
    *,
    tag: str,
    request: RequestSchema | None = None,
    response: dict[str, Any] | None = None,
    response_type: str = "application/json",
    streams: bool = False,
    public: bool = False,
    errors: tuple[int, ...] = (),
    status: int = 200,
    error_schema: str = "Error",
    empty: tuple[int, ...] = (),
    parameters: tuple[dict[str, Any], ...] = (),
    request_types: tuple[str, ...] = ("application/json",),
) -> Callable[[F], F]:
    """Attach an OpenAPI description to a handler."""

    def decorate(handler: F) -> F:
        handler.__openapi__ = RouteDoc(  # type: ignore[attr-defined]
            summary=summary,
            tag=tag,
            request=request,
            response=response or {"type": "object"},
            response_type=response_type,
            streams=streams,
            public=public,
            errors=errors,
            status=status,
            error_schema=error_schema,
            empty=empty,
            parameters=parameters,
            request_types=request_types,
        )
        return handler

    return decorate


def build_openapi(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else ""
        doc: RouteDoc | None = getattr(route.handler, "__openapi__", None)
        if doc is None:
            doc = RouteDoc(
                summary=(route.handler.__doc__ or "").strip().split("\n")[0], tag="other"
            )
        paths.setdefault(path, {})[route.method.lower()] = _operation(doc, path, app)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "heatcompute node",
            "version": __version__,
            "description": "A compute heater's node: heat control, jobs and local AI inference.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(_SCHEMAS),
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


def _operation(doc: RouteDoc, path: str, app: web.Application) -> dict[str, Any]:
    error_ref = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{doc.error_schema}"}}
    }
    content: dict[str, Any] = {doc.response_type: {"schema": doc.response}}
    if doc.streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {
        str(doc.status): {
            "description": "OK" if doc.status == 200 else "accepted",
            "content": content,
        }
    }
    if not doc.public:
        responses["401"] = {"description": "missing or invalid bearer token", "content": error_ref}
    for status in doc.errors:
        responses[str(status)] = {"description": "error", "content": error_ref}
    for status in doc.empty:
        responses[str(status)] = {"description": "accepted, no body"}
    operation: dict[str, Any] = {"summary": doc.summary, "tags": [doc.tag], "responses": responses}
    if doc.public:
        operation["security"] = []
    # A route's own description of a path parameter wins over the one by name.
    own = {p["name"]: p for p in doc.parameters if p["in"] == "path"}
    parameters = [
        own.get(name)
        or {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_PARAMETERS.get(name, {"type": "string"}),
        }
        for name in (
            part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")
        )
    ]
    parameters += [p for p in doc.parameters if p["in"] != "path"]
    if parameters:
        operation["parameters"] = parameters
    if doc.request is not None:
        schema = doc.request(app) if callable(doc.request) else doc.request
        operation["requestBody"] = {
            "required": True,
            "content": {
                kind: {"schema": schema if kind == "application/json" else _BINARY}
                for kind in doc.request_types
            },
        }
    return operation


@describe("This document: OpenAPI 3.1 description of every route", tag="meta")
async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_handler)
