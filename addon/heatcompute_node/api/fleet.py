"""/api/fleet: pairing and roles (docs/fleet.md); and /v1 for the lead's split model.

Home Assistant pairs nodes by giving each the other's certificate (public), then
chooses roles. The middleware hands /v1 requests for the lead's split model to the
fleet's proxy before the node's own OpenAI routes see them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import re
from typing import Any

from aiohttp import web

from ..fleet import proxy
from ..fleet.keys import InvalidCertificateError, fingerprint
from ..fleet.lead import EngineShape
from ..fleet.service import FleetService, RoleError
from ..fleet.state import ROLES, Peer, Role
from .errors import ApiError, Handler, read_json_object, reject_unknown_fields
from .keys import NODE_KEY
from .openai_service import MANAGER_KEY
from .openapi import describe, register_path_parameter

FLEET_KEY = web.AppKey("fleet", FleetService)
_TAG = "fleet"
_PEER_FIELDS = {"node_id", "name", "certificate", "address"}
_NODE_ID_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
_NODE_ID = re.compile(_NODE_ID_PATTERN)
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_ADDRESS = re.compile(f"^[^\\s/]+:{_PORT}$")
register_path_parameter("node_id", {"type": "string", "pattern": _NODE_ID_PATTERN})
_NODE_ID_SCHEMA = {"type": "string", "pattern": _NODE_ID_PATTERN}
_PAIRING_REQUEST: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "required": ["node_id", "name", "certificate"],
            "additionalProperties": False,
            "properties": {
                "node_id": _NODE_ID_SCHEMA,
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "certificate": {"type": "string", "minLength": 1, "description": "PEM"},
                "address": {
                    "type": ["string", "null"],
                    "pattern": _ADDRESS.pattern,
                    "description": "host:port of its tunnel (a lead needs it for a worker)",
                },
            },
        },
        {
            "type": "object",
            "required": ["renew_key"],
            "additionalProperties": False,
            "properties": {"renew_key": {"const": True}},
        },
    ]
}
_ROLE_REQUEST: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "required": ["role"],
            "additionalProperties": False,
            "properties": {"role": {"enum": ["off", "worker"]}},
        },
        {
            "type": "object",
            "required": ["role", "model", "workers"],
            "additionalProperties": False,
            "properties": {
                "role": {"const": "lead"},
                "model": {"type": "string", "minLength": 1},
                "workers": {"type": "array", "minItems": 1, "items": _NODE_ID_SCHEMA},
            },
        },
    ]
}

FLEET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["node_id", "role", "fingerprint", "certificate", "tunnel_port", "peers"],
    "properties": {
        "node_id": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "fingerprint": {"type": "string", "description": "SHA-256 of the certificate (DER)"},
        "certificate": {"type": "string", "description": "PEM; give it to peers at pairing"},
        "tunnel_port": {"type": "integer"},
        "model": {"type": ["string", "null"]},
        "workers": {"type": "array", "items": {"type": "string"}},
        "peers": {"type": "array", "items": {"type": "object"}},
        "lead": {"type": ["object", "null"]},
        "worker": {"type": ["object", "null"]},
    },
}
_IDENTITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        k: FLEET_SCHEMA["properties"][k]
        for k in ("node_id", "name", "fingerprint", "certificate", "tunnel_port")
    },
}


def _fleet(request: web.Request) -> FleetService:
    return request.app[FLEET_KEY]


def _identity(fleet: FleetService) -> dict[str, Any]:
    return {
        "node_id": fleet.node_id,
        "name": fleet.name,
        "fingerprint": fleet.key.fingerprint,
        "certificate": fleet.key.certificate,
        "tunnel_port": fleet.port,
    }


def _view(fleet: FleetService) -> dict[str, Any]:
    section = fleet.snapshot().section(None)
    role = fleet.role
    return {
        **_identity(fleet),
        "role": role.name,
        "model": role.model,
        "workers": list(role.workers),
        "peers": [p.public() for p in fleet.state.peers.values()],
        "lead": section["lead"],
        "worker": section["worker"],
    }


@describe("This node's fleet key, peers, role and figures", tag=_TAG, response=FLEET_SCHEMA)
async def get_fleet(request: web.Request) -> web.Response:
    return web.json_response(_view(_fleet(request)))


@describe(
    "Pair with a node (accept its certificate), or make this node a new key "
    '({"renew_key": true}); answers this node\'s own certificate',
    tag=_TAG,
    request=_PAIRING_REQUEST,
    response=_IDENTITY_SCHEMA,
    errors=(400, 415),
)
async def post_pairing(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    body = await read_json_object(request)
    if body.get("renew_key") is True and set(body) == {"renew_key"}:
        await fleet.renew_key()
        return web.json_response(_identity(fleet))
    reject_unknown_fields(body, _PEER_FIELDS)
    await fleet.pair(_peer(body, own_id=fleet.node_id))
    return web.json_response(_identity(fleet))


def _peer(body: dict[str, Any], *, own_id: str) -> Peer:
    for name in ("node_id", "name", "certificate"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(400, f"'{name}' is required (a string)", code="invalid_peer", param=name)
    if not _NODE_ID.match(body["node_id"]):
        raise ApiError(
            400, f"'node_id' must match {_NODE_ID_PATTERN}", code="invalid_peer", param="node_id"
        )
    if body["node_id"] == own_id:
        raise ApiError(400, "a node does not pair with itself", code="invalid_peer")
    address = body.get("address")
    if address is not None and not _valid_address(address):
        raise ApiError(400, "'address' must be host:port", code="invalid_peer", param="address")
    try:
        print_ = fingerprint(body["certificate"])
    except InvalidCertificateError as err:
        raise ApiError(400, str(err), code="invalid_certificate", param="certificate") from err
    return Peer(
        node_id=body["node_id"],
        name=body["name"],
        certificate=body["certificate"],
        fingerprint=print_,
        address=address,
    )


def _valid_address(address: Any) -> bool:
    return isinstance(address, str) and bool(_ADDRESS.match(address))


@describe(
    "Forget a paired node: its certificate is refused from now on",
    tag=_TAG,
    response={
        "type": "object",
        "required": ["node_id", "deleted"],
        "properties": {"node_id": {"type": "string"}, "deleted": {"const": True}},
    },
    errors=(404,),
)
async def delete_pairing(request: web.Request) -> web.Response:
    node_id = request.match_info["node_id"]
    try:
        await _fleet(request).unpair(node_id)
    except KeyError as err:
        raise ApiError(404, "no such paired node", code="peer_not_found") from err
    return web.json_response({"node_id": node_id, "deleted": True})


@describe(
    "Choose this node's fleet role: off, worker, or lead (with the model and its workers)",
    tag=_TAG,
    request=_ROLE_REQUEST,
    response=FLEET_SCHEMA,
    errors=(400, 404, 409, 415),
)
async def post_role(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"role", "model", "workers"})
    name, model, workers = body.get("role"), body.get("model"), body.get("workers", [])
    if name not in ROLES:
        raise ApiError(
            400, f"'role' must be one of {', '.join(ROLES)}", code="invalid_role", param="role"
        )
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string", code="invalid_role", param="model")
    if not isinstance(workers, list) or not all(isinstance(w, str) for w in workers):
        raise ApiError(
            400, "'workers' must be a list of node ids", code="invalid_role", param="workers"
        )
    if name != "lead" and (model or workers):
        raise ApiError(400, "only a lead has a model and workers", code="invalid_role")
    role = Role(name=name, model=model, workers=tuple(workers))
    try:
        await fleet.set_role(role, remember=True)
    except RoleError as err:
        status = _ROLE_ERROR_STATUS.get(err.code, 400)
        raise ApiError(status, str(err), code=err.code) from err
    return web.json_response(_view(fleet))


_ROLE_ERROR_STATUS = {
    "peer_not_found": 404,
    "model_not_found": 404,
    "worker_without_address": 409,
    "role_failed": 409,
}


@web.middleware
async def split_model_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests for the lead's split model go to the fleet's engine process."""
    lead = request.app[FLEET_KEY].lead
    if lead is None or request.method != "POST" or request.path not in proxy.SPLIT_PATHS:
        return await handler(request)
    body = await request.read()
    if proxy.requested_model(body) != lead.model.id:
        return await handler(request)
    return await proxy.forward(request, body, lead)


def setup(app: web.Application) -> None:
    node = app[NODE_KEY]
    settings = node.settings
    app[FLEET_KEY] = FleetService(
        node_id=node.node_id,
        name=settings.node_name,
        data_dir=settings.data_dir,
        host=settings.host,
        port=settings.fleet_port,
        worker_by_default=settings.fleet_worker,
        find_model=lambda model_id: _model_path(app, model_id),
        shape=EngineShape(
            threads=settings.llm_threads,
            context=settings.llm_context,
            slots=settings.llm_slots,
        ),
    )
    app.router.add_get("/api/fleet", get_fleet)
    app.router.add_post("/api/fleet/pairing", post_pairing)
    app.router.add_delete("/api/fleet/pairing/{node_id}", delete_pairing)
    app.router.add_post("/api/fleet/role", post_role)
    app.cleanup_ctx.append(_lifecycle)


def _model_path(app: web.Application, model_id: str) -> Path:
    return app[MANAGER_KEY].find(model_id, "chat").path


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    fleet, node = app[FLEET_KEY], app[NODE_KEY]
    await fleet.start()
    node.add_status_source(fleet)
    node.add_sample_listener(fleet)
    yield
    node.remove_status_source(fleet)
    await fleet.stop()
