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


def register_schema(name: str, schema: dict[str, Any]) -> None:
    """Make a schema referable as ``#/components/schemas/<name>``."""
    _SCHEMAS[name] = schema


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDoc:
    summary: str
    tag: str
    request: dict[str, Any] | None = None
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    response_type: str = "application/json"
    public: bool = False
    errors: tuple[int, ...] = ()


def describe(
    summary: str,
    *,
    tag: str,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    response_type: str = "application/json",
    public: bool = False,
    errors: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Attach an OpenAPI description to a handler."""

    def decorate(handler: F) -> F:
        handler.__openapi__ = RouteDoc(  # type: ignore[attr-defined]
            summary=summary,
            tag=tag,
            request=request,
            response=response or {"type": "object"},
            response_type=response_type,
            public=public,
            errors=errors,
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
        paths.setdefault(path, {})[route.method.lower()] = _operation(doc, path)
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


def _operation(doc: RouteDoc, path: str) -> dict[str, Any]:
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {doc.response_type: {"schema": doc.response}}}
    }
    if not doc.public:
        responses["401"] = {"description": "missing or invalid bearer token", "content": error_ref}
    for status in doc.errors:
        responses[str(status)] = {"description": "error", "content": error_ref}
    operation: dict[str, Any] = {"summary": doc.summary, "tags": [doc.tag], "responses": responses}
    if doc.public:
        operation["security"] = []
    parameters = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for part in path.split("/")
        if part.startswith("{") and part.endswith("}")
    ]
    if parameters:
        operation["parameters"] = parameters
    if doc.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": doc.request}},
        }
    return operation


@describe("This document: OpenAPI 3.1 description of every route", tag="meta")
async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_handler)
