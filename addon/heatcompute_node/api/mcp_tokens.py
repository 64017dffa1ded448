"""``/api/mcp/tokens``: the owner creates, lists and revokes the bridge's MCP tokens.

These routes sit behind the node's own token (the control plane's auth), so only the
owner's tools (Home Assistant's integration, scripts with the node token) reach them.
A revoked token stops working at once, on its very next request.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..mcp.tokens import SCOPES, TokenSpecError, parse_scopes
from .errors import ApiError, read_json_object, reject_unknown_fields
from .mcp import BRIDGE_KEY
from .openapi import describe, path_parameter

_NAME: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
_TOKEN_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["name", "scopes"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "scopes": {
            "type": "array",
            "minItems": 1,
            "description": "at least one: a token without scopes could do nothing",
            "items": {"type": "string", "enum": list(SCOPES)},
        },
    },
}


@describe("MCP tokens: name, scopes and where each comes from (never the secret)", tag="mcp")
async def list_tokens(request: web.Request) -> web.Response:
    return web.json_response({"tokens": request.app[BRIDGE_KEY].tokens.listing()})


@describe(
    "Create an MCP token with scopes; the secret is in this response only",
    tag="mcp",
    request=_TOKEN_REQUEST,
    status=201,
    errors=(400, 409),
)
async def create_token(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, {"name", "scopes"})
    name = body.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "name must be a string", param="name")
    raw_scopes = body.get("scopes")
    # The settings' "files+databases" text form is for the add-on's options; the API
    # takes the list its document describes, and anything else is the caller's 400.
    if not isinstance(raw_scopes, list) or not all(isinstance(s, str) for s in raw_scopes):
        raise ApiError(400, "scopes must be a list of scope names", param="scopes")
    try:
        scopes = parse_scopes(raw_scopes)
    except TokenSpecError as err:
        raise ApiError(400, str(err), param="scopes") from err
    store = request.app[BRIDGE_KEY].tokens
    try:
        token = store.create(name, scopes)
    except TokenSpecError as err:
        status = 409 if "exists" in str(err) else 400
        raise ApiError(status, str(err), param="name") from err
    return web.json_response({"name": name, "scopes": sorted(scopes), "token": token}, status=201)


@describe(
    "Revoke an MCP token created through the API",
    tag="mcp",
    errors=(404, 409),
    parameters=(path_parameter("name", _NAME, "the token's name"),),
)
async def revoke_token(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    store = request.app[BRIDGE_KEY].tokens
    if store.is_configured(name):
        raise ApiError(
            409, f"{name} comes from the settings (mcp_tokens); remove it there", code="configured"
        )
    if not store.revoke(name):
        raise ApiError(404, f"no MCP token named {name}", code="not_found")
    return web.json_response({"revoked": name})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/mcp/tokens", list_tokens)
    app.router.add_post("/api/mcp/tokens", create_token)
    app.router.add_delete("/api/mcp/tokens/{name}", revoke_token)
