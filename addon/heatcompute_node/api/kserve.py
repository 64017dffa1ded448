"""/v2: the KServe v2 (Open Inference) HTTP protocol for the ONNX models, as Triton
speaks it, so Triton's clients (``tritonclient[http]``) and tools work with the node.

Health, server and model metadata, model config and statistics, infer (JSON tensors and
the binary tensor data extension), and the model repository extension (index, load,
unload). Every path exists with and without ``/versions/<v>``. Errors are Triton's:
``{"error": "<message>"}`` with 400 (bad request), 404 (unknown model), 503 (queue full,
timed out, model unavailable) or 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .. import __version__
from ..engines.onnx.batcher import DynamicBatcher, InferRequest
from ..engines.onnx.errors import InferenceError, ModelNotFoundError
from ..engines.onnx.session import NUMPY_OF
from .errors import ApiError
from .kserve_tensors import (
    HEADER_LENGTH,
    TensorError,
    encode_infer_response,
    parse_infer_request,
)
from .onnx_service import ONNX_KEY
from .openapi import describe, path_parameter, register_schema
from .serving import interactive

# Triton's HTTP status for each of its error codes (http_server.cc, HttpCodeFromError).
STATUS_OF = {"NOT_FOUND": 404, "INVALID_ARG": 400, "UNAVAILABLE": 503, "INTERNAL": 500}
EXTENSIONS = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "model_configuration",
    "schedule_policy",
]
_MODEL = "/v2/models/{model}"
_VERSIONED = "/v2/models/{model}/versions/{version}"
_TAG = "kserve"
# Triton's error body, which tritonclient reads (errors.py answers it on every /v2 path).
ERROR = "KServeError"
register_schema(
    ERROR,
    {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
)
_VERSION_TEXT = re.compile(r"0*[1-9][0-9]*")
"""A model version as a path segment: a whole number >= 1, ASCII digits only."""
_PATH = (
    # A folder of the repository: not hidden, not a path (engines/onnx/engine.py).
    path_parameter("model", {"type": "string", "pattern": "^[^./][^/]*$"}, "a repository folder"),
    path_parameter(
        "version", {"type": "string", "pattern": f"^{_VERSION_TEXT.pattern}$"}, "1, 2, ..."
    ),
)
# Every model route answers 404 for a model (or version) the repository lacks, 400 for a
# version that is not a number >= 1, 503 for one that is not loaded (now).
_MODEL_ERRORS = (400, 404, 503)
_DATATYPES = sorted(NUMPY_OF)
INFER_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"enum": _DATATYPES},
                    "parameters": {"type": "object"},
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
_INDEX_ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "state": {"type": "string"},
        "reason": {"type": "string"},
    },
}


def kserve_error(err: InferenceError) -> ApiError:
    return ApiError(STATUS_OF[err.code], str(err))


def _version(request: web.Request) -> int | None:
    raw = request.match_info.get("version")
    if raw is None or raw == "":
        return None
    # Not str.isdigit(): it takes "²" and "٣", which int() refuses or reads as 3.
    if not _VERSION_TEXT.fullmatch(raw):
        raise ApiError(400, f"invalid model version '{raw}': expected a number >= 1")
    return int(raw)


def _batcher(request: web.Request) -> DynamicBatcher:
    try:
        return request.app[ONNX_KEY].batcher(request.match_info["model"], _version(request))
    except InferenceError as err:
        raise kserve_error(err) from err


@describe("KServe v2: server metadata", tag=_TAG, error_schema=ERROR)
async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response(
        {"name": "heatcompute", "version": __version__, "extensions": EXTENSIONS}
    )


@describe("KServe v2: the server is live", tag=_TAG, error_schema=ERROR)
async def server_live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


@describe("KServe v2: the server is ready (its models are loaded)", tag=_TAG, error_schema=ERROR)
async def server_ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


@describe(
    "KServe v2: model metadata (inputs and outputs read from the model)",
    tag=_TAG,
    error_schema=ERROR,
    errors=_MODEL_ERRORS,
    parameters=_PATH,
)
async def model_metadata(request: web.Request) -> web.Response:
    batcher = _batcher(request)
    engine = request.app[ONNX_KEY]
    name = request.match_info["model"]
    model = batcher.model
    batched = batcher.config.max_batch_size > 0

    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": [-1, *spec.shape[1:]] if batched else list(spec.shape),
            }
            for spec in specs
        ]

    served = [str(v) for v in engine.served_versions(name)]
    return web.json_response(
        {
            "name": name,
            "versions": served if _version(request) is None else [str(model.version)],
            "platform": "onnxruntime_onnx",
            "inputs": tensors(model.inputs),
            "outputs": tensors(model.outputs),
        }
    )


@describe(
    "KServe v2: the model (version) is ready",
    tag=_TAG,
    error_schema=ERROR,
    errors=_MODEL_ERRORS,
    parameters=_PATH,
)
async def model_ready(request: web.Request) -> web.Response:
    _batcher(request)
    return web.json_response({"name": request.match_info["model"], "ready": True})


@describe(
    "Triton: the model's configuration (config.json plus what the model says)",
    tag=_TAG,
    error_schema=ERROR,
    errors=_MODEL_ERRORS,
    parameters=_PATH,
)
async def model_config(request: web.Request) -> web.Response:
    batcher = _batcher(request)
    body = batcher.config.as_json()
    batched = batcher.config.max_batch_size > 0
    for key, specs in (("input", batcher.model.inputs), ("output", batcher.model.outputs)):
        body[key] = [
            {
                "name": spec.name,
                "data_type": f"TYPE_{spec.datatype}",
                "dims": list(spec.shape[1:] if batched else spec.shape),
            }
            for spec in specs
        ]
    body["variant"] = batcher.model.variant
    return web.json_response(body)


@describe(
    "Triton: inference statistics of one model, or of all (statistics extension)",
    tag=_TAG,
    error_schema=ERROR,
    errors=_MODEL_ERRORS,
    parameters=_PATH,
)
async def model_stats(request: web.Request) -> web.Response:
    engine = request.app[ONNX_KEY]
    name = request.match_info.get("model")
    version = _version(request)
    if name is not None:
        _batcher(request)  # 404/503 for a model that isn't served
    models = [
        m
        for m in engine.stats().models
        if m.state != "UNAVAILABLE"
        and (name is None or m.name == name)
        and (version is None or m.version == version)
    ]
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for m in models:
        entry = merged.setdefault(
            (m.name, m.version),
            {
                "name": m.name,
                "version": str(m.version),
                "last_inference": 0,
                "inference_count": 0,
                "execution_count": 0,
                "inference_stats": {
                    key: {"count": 0, "ns": 0}
                    for key in (
                        "success",
                        "fail",
                        "queue",
                        "compute_input",
                        "compute_infer",
                        "compute_output",
                        "cache_hit",
                        "cache_miss",
                    )
                },
                "batch_stats": {},
            },
        )
        entry["last_inference"] = max(entry["last_inference"], m.last_inference_ms)
        entry["inference_count"] += m.inference_count
        entry["execution_count"] += m.execution_count
        stats = entry["inference_stats"]
        for key, value in (
            ("success", m.success),
            ("fail", m.fail),
            ("queue", m.queue),
            ("compute_infer", m.compute_infer),
        ):
            stats[key]["count"] += value.count
            stats[key]["ns"] += value.ns
        for batch in m.batch_stats:
            slot = entry["batch_stats"].setdefault(batch.batch_size, {"count": 0, "ns": 0})
            slot["count"] += batch.compute_infer.count
            slot["ns"] += batch.compute_infer.ns
        if m.quantization is not None:
            entry["quantization"] = m.quantization.as_json()
    for entry in merged.values():
        entry["batch_stats"] = [
            {
                "batch_size": size,
                "compute_input": {"count": slot["count"], "ns": 0},
                "compute_infer": slot,
                "compute_output": {"count": slot["count"], "ns": 0},
            }
            for size, slot in sorted(entry["batch_stats"].items())
        ]
    return web.json_response({"model_stats": list(merged.values())})


@describe(
    "KServe v2: run the model (JSON tensors, or binary with Inference-Header-Content-Length)",
    tag=_TAG,
    request=INFER_REQUEST,
    error_schema=ERROR,
    errors=_MODEL_ERRORS,
    parameters=_PATH,
)
@interactive
async def infer(request: web.Request) -> web.Response:
    batcher = _batcher(request)
    body = await request.read()
    try:
        parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
        priority = _whole(parsed.parameters, "priority")
        timeout_us = _whole(parsed.parameters, "timeout")
    except TensorError as err:
        raise ApiError(400, str(err)) from err
    try:
        outputs = await batcher.infer(
            InferRequest(
                inputs=parsed.inputs,
                outputs=parsed.outputs,
                priority=priority or 0,
                timeout_us=timeout_us,
            )
        )
    except InferenceError as err:
        raise kserve_error(err) from err
    datatypes = {spec.name: spec.datatype for spec in batcher.model.outputs}
    payload, json_length = encode_infer_response(
        model_name=batcher.model.name,
        model_version=batcher.model.version,
        request=parsed,
        outputs=outputs,
        datatypes=datatypes,
    )
    if json_length is None:
        return web.Response(body=payload, content_type="application/json")
    return web.Response(
        body=payload,
        headers={HEADER_LENGTH: str(json_length), "Content-Type": "application/octet-stream"},
    )


def _whole(parameters: dict[str, Any], name: str) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TensorError(f"parameter '{name}' must be a whole number >= 0")
    return int(value)


@describe(
    "Triton: the model repository's index (model repository extension)",
    tag=_TAG,
    response={"type": "array", "items": _INDEX_ENTRY},
    error_schema=ERROR,
    errors=(400,),
)
async def repository_index(request: web.Request) -> web.Response:
    body = await _optional_json(request)
    ready_only = bool(body.get("ready", False))
    entries = [
        {
            key: value
            for key, value in (
                ("name", entry.name),
                ("version", entry.version),
                ("state", entry.state),
                ("reason", entry.reason),
            )
            if value or key == "name"
        }
        for entry in request.app[ONNX_KEY].index()
        if not ready_only or entry.state == "READY"
    ]
    return web.json_response(entries)


@describe(
    "Triton: load (or reload) a model; 'parameters.config' overrides its config (rollback "
    "to a version with a version_policy)",
    tag=_TAG,
    error_schema=ERROR,
    # Triton answers a load it can't do with 400, whatever the cause (an unknown model
    # too), and tritonclient expects that.
    errors=(400,),
    parameters=_PATH[:1],
)
async def repository_load(request: web.Request) -> web.Response:
    body = await _optional_json(request)
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(400, "'parameters' must be an object")
    override: dict[str, Any] = {}
    raw = parameters.get("config")
    if raw is not None:
        try:
            override = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as err:
            raise ApiError(400, f"failed to parse the config parameter: {err}") from err
        if not isinstance(override, dict):
            raise ApiError(400, "the config parameter must be a JSON object")
    name = request.match_info["model"]
    try:
        await request.app[ONNX_KEY].load(name, override)
    except ModelNotFoundError as err:
        # Triton answers a load it can't do with 400, whatever the cause.
        raise ApiError(400, str(err)) from err
    except InferenceError as err:
        raise ApiError(400, str(err)) from err
    return web.json_response({})


@describe(
    "Triton: unload a model (its queued requests are answered first)",
    tag=_TAG,
    error_schema=ERROR,
    errors=(400,),
    parameters=_PATH[:1],
)
async def repository_unload(request: web.Request) -> web.Response:
    await _optional_json(request)
    try:
        await request.app[ONNX_KEY].unload(request.match_info["model"])
    except InferenceError as err:
        raise ApiError(400, str(err)) from err
    return web.json_response({})


async def _optional_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"failed to parse the request JSON buffer: {err}") from err
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/v2", server_metadata)
    router.add_get("/v2/health/live", server_live)
    router.add_get("/v2/health/ready", server_ready)
    router.add_get("/v2/models/stats", model_stats)
    for base in (_MODEL, _VERSIONED):
        router.add_get(base, model_metadata)
        router.add_get(f"{base}/ready", model_ready)
        router.add_get(f"{base}/config", model_config)
        router.add_get(f"{base}/stats", model_stats)
        router.add_post(f"{base}/infer", infer)
    router.add_post("/v2/repository/index", repository_index)
    router.add_post("/v2/repository/models/{model}/load", repository_load)
    router.add_post("/v2/repository/models/{model}/unload", repository_unload)
