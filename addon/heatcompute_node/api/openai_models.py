"""/v1/models: the models this node has, each with its kind and its state.

The kind says what a model is for (a client choosing a chat model skips embedding
models); the state says where it is in its life (a client routing a request prefers a
node whose model is loaded). `context_length` lets clients fit their prompts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engines.llm.models import ModelEntry, ModelManager, ModelNotFoundError
from .openai_errors import model_errors
from .openai_service import MANAGER_KEY
from .openapi import describe, path_parameter

_OPENAI = "openai"

MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "kind", "state"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "kind": {
            "enum": ["chat", "embedding"],
            "description": "chat models answer chat and completions (and embed); "
            "embedding models only embed",
        },
        "state": {
            "enum": ["available", "loading", "loaded", "failed"],
            "description": "available: on disk, loads on first use; failed: its last load "
            "raised (the next request tries again)",
        },
        "loaded": {"type": "boolean", "description": "state == loaded (older clients)"},
        "context_length": {
            "type": "integer",
            "description": "tokens one request may hold, prompt and answer together",
        },
    },
}


@describe(
    "Models this node serves (OpenAI list shape), each with its kind and state",
    tag=_OPENAI,
    response={
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": MODEL_SCHEMA},
        },
    },
)
async def list_models(request: web.Request) -> web.Response:
    manager = request.app[MANAGER_KEY]
    data = [_model(manager, e) for e in manager.entries()]
    return web.json_response({"object": "list", "data": data})


@describe(
    "One model (OpenAI retrieve-model shape)",
    tag=_OPENAI,
    response=MODEL_SCHEMA,
    errors=(404,),
    parameters=(
        path_parameter("model", {"type": "string", "minLength": 1}, "its id, or its file name"),
    ),
)
async def retrieve_model(request: web.Request) -> web.Response:
    manager = request.app[MANAGER_KEY]
    with model_errors():
        entry = _entry(manager, request.match_info["model"])
    return web.json_response(_model(manager, entry))


def _entry(manager: ModelManager, model_id: str) -> ModelEntry:
    for entry in manager.entries():
        if model_id in (entry.id, f"{entry.id}.gguf"):
            return entry
    raise ModelNotFoundError(model_id, "chat")


def _model(manager: ModelManager, entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": "heatcompute",
        "kind": entry.kind,
        "state": entry.state,
        "loaded": entry.loaded,
        # Tokens a request may hold (prompt and answer): clients fit prompts to it.
        "context_length": _context_length(manager, entry),
    }


def _context_length(manager: ModelManager, entry: ModelEntry) -> int:
    n_ctx = manager.settings.n_ctx if entry.kind == "chat" else manager.settings.embedding_ctx
    # The scheduler's own limit: the context, unless the model was trained on less.
    return min(n_ctx, entry.tokenizer.n_ctx_train or n_ctx)
