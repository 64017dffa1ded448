"""The OpenAI-compatible API: /v1/models, chat/completions, completions, embeddings.

Handlers only translate: body -> engine request, engine events -> OpenAI JSON or SSE.
The model manager and the schedulers behind it do the work. A client that goes away
has its request cancelled at once (its KV cells are freed at the next engine step).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
import contextlib
from dataclasses import replace
import json
import time
from typing import Any
import uuid

from aiohttp import web
import numpy as np

from ..engines.llm.chat import ChatTemplateError
from ..engines.llm.embeddings import InputTooLongError
from ..engines.llm.errors import ContextLengthError, EngineOverloadedError, EngineStoppedError
from ..engines.llm.models import ChatModel, ModelManager
from ..engines.llm.request import Finished, GenerationHandle, GenerationRequest, TextDelta
from ..engines.llm.sampling import GrammarError
from ..engines.llm.tool_calls import parse_tool_calls
from ..engines.llm.tool_stream import ToolCallStream
from .errors import ApiError, read_json_object
from .openai_errors import context_length_exceeded, input_too_long, model_errors
from .openai_models import list_models, retrieve_model
from .openai_params import (
    GenerationParams,
    ToolParams,
    forced_tool_grammar,
    generation_params,
    invalid,
    messages_param,
    prompt_param,
    response_grammar,
    tool_params,
)
from .openai_service import MANAGER_KEY, setup_service
from .openapi import describe
from .serving import interactive

_DISCONNECT_POLL_S = 0.05
_OPENAI = "openai"


@describe(
    "Chat completion (OpenAI): streaming, tools, response_format",
    tag=_OPENAI,
    request={"type": "object", "required": ["messages"]},
    errors=(400, 404, 429, 500, 503),
)
@interactive
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    params = generation_params(body)
    messages = messages_param(body)
    tools = tool_params(body)
    grammar = forced_tool_grammar(tools) or response_grammar(body)
    model = await _chat_model(request, params.model)
    try:
        prompt = model.template.render(messages, tools=tools.tools)
    except ChatTemplateError as err:
        raise invalid(str(err), "messages") from err
    # The template may write the BOS itself; the tokenizer adds one only if it didn't.
    bos = model.tokenizer.special_text(model.tokenizer.bos) if model.tokenizer.bos >= 0 else ""
    tokens = model.tokenizer.tokenize(prompt, add_special=not (bos and prompt.startswith(bos)))
    handle = _submit(model, tokens, params, grammar, "messages")
    created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
    base = {"id": rid, "object": "chat.completion", "created": created, "model": model.id}
    if params.stream:
        return await _stream_chat(request, handle, base, params, tools)
    finished = await _result(request, handle)
    message: dict[str, Any] = {"role": "assistant", "content": finished.text}
    reason: str = finished.reason
    if tools.tools:
        content, calls = parse_tool_calls(finished.text, _names(tools))
        if calls:
            message = {"role": "assistant", "content": content or None, "tool_calls": _calls(calls)}
            reason = "tool_calls"
    choice = {"index": 0, "message": message, "finish_reason": reason, "logprobs": None}
    return web.json_response({**base, "choices": [choice], "usage": _usage(finished)})


@describe(
    "Text completion (OpenAI legacy completions)",
    tag=_OPENAI,
    request={"type": "object", "required": ["prompt"]},
    errors=(400, 404, 429, 500, 503),
)
@interactive
async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    params = generation_params(body)
    prompt = prompt_param(body)
    grammar = response_grammar(body)
    model = await _chat_model(request, params.model)
    tokens = model.tokenizer.tokenize(prompt, add_special=True, parse_special=False)
    handle = _submit(model, tokens, params, grammar, "prompt")
    created, rid = int(time.time()), f"cmpl-{uuid.uuid4().hex[:24]}"
    base = {"id": rid, "object": "text_completion", "created": created, "model": model.id}
    if params.stream:
        response = await _open_sse(request)
        async for event in _events(request, handle):
            if isinstance(event, TextDelta):
                choice = {"index": 0, "text": event.text, "finish_reason": None, "logprobs": None}
                await _send(response, {**base, "choices": [choice]})
            elif not await _stream_error(response, event):
                choice = {"index": 0, "text": "", "finish_reason": event.reason, "logprobs": None}
                await _send(response, {**base, "choices": [choice], "usage": _usage(event)})
        await _done(response)
        return response
    finished = await _result(request, handle)
    choice = {"index": 0, "text": finished.text, "finish_reason": finished.reason, "logprobs": None}
    return web.json_response({**base, "choices": [choice], "usage": _usage(finished)})


@describe(
    "Embeddings (OpenAI): unit vectors, one per input",
    tag=_OPENAI,
    request={"type": "object", "required": ["input"]},
    errors=(400, 404, 503),
)
@interactive
async def embeddings(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("input must be a string or a non-empty list of strings", "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format must be float or base64", "encoding_format")
    manager = request.app[MANAGER_KEY]
    with model_errors():
        engine = await manager.embeddings(_model_name(body), wait_s=manager.settings.load_wait_s)
    try:
        tokens = engine.tokenize(texts)
    except InputTooLongError as err:
        raise input_too_long(err) from err
    vectors = await engine.embed(tokens)
    entry = manager.find(_model_name(body), "embedding")
    n_tokens = sum(len(t) for t in tokens)
    return web.json_response(
        {
            "object": "list",
            "model": entry.id,
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }
    )


# --- engine plumbing -------------------------------------------------------------------


async def _chat_model(request: web.Request, name: str | None) -> ChatModel:
    manager = request.app[MANAGER_KEY]
    with model_errors():
        return await manager.chat(name, wait_s=manager.settings.load_wait_s)


def _model_name(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("model must be a string", "model")
    return model


def _submit(
    model: ChatModel, tokens: list[int], params: GenerationParams, grammar: str | None, param: str
) -> GenerationHandle:
    scheduler = model.scheduler
    max_tokens = params.max_tokens or scheduler.context_limit
    sampling = params.sampling
    if grammar is not None:
        sampling = replace(sampling, grammar=grammar)
    req = GenerationRequest(
        prompt=tuple(tokens),
        max_tokens=max_tokens,
        sampling=sampling,
        stop=params.stop,
        ignore_eos=params.ignore_eos,
        priority=params.priority,
    )
    try:
        return scheduler.submit(req)
    except ContextLengthError as err:
        raise context_length_exceeded(err, param=param, max_tokens=params.max_tokens) from err
    except EngineOverloadedError as err:
        raise ApiError(
            429,
            str(err),
            code="overloaded",
            headers={"Retry-After": str(int(err.retry_after_s))},
        ) from err
    except GrammarError as err:
        raise invalid(f"the output constraint does not compile: {err}", "response_format") from err
    except EngineStoppedError as err:
        raise ApiError(503, str(err), code="engine_unavailable") from err


async def _events(
    request: web.Request, handle: GenerationHandle
) -> AsyncIterator[TextDelta | Finished]:
    """The request's events; the request is cancelled if the client goes or we stop early."""
    watcher = asyncio.create_task(_cancel_on_disconnect(request, handle))
    try:
        async for event in handle:
            yield event
    finally:
        watcher.cancel()
        handle.cancel()


async def _cancel_on_disconnect(request: web.Request, handle: GenerationHandle) -> None:
    # aiohttp does not cancel handlers when a client disconnects (handler_cancellation
    # is off by default), so the transport is watched; a closed one cancels the request.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110 - no event exists for it
        await asyncio.sleep(_DISCONNECT_POLL_S)
    handle.cancel()


async def _result(request: web.Request, handle: GenerationHandle) -> Finished:
    async for event in _events(request, handle):
        if isinstance(event, Finished):
            if event.reason == "error":
                raise ApiError(500, event.error or "engine error", code="engine_error")
            return event
    raise ApiError(500, "the request ended without a result", code="engine_error")


async def _stream_chat(
    request: web.Request,
    handle: GenerationHandle,
    base: dict[str, Any],
    params: GenerationParams,
    tools: ToolParams,
) -> web.StreamResponse:
    base = {**base, "object": "chat.completion.chunk"}
    response = await _open_sse(request)

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

    await _send(response, chunk({"role": "assistant", "content": ""}))
    # With tools the answer may turn out to be a call: only what may still become one is
    # held back (tool_stream.py); words go out as they come.
    splitter = ToolCallStream(_names(tools)) if tools.tools else None
    async for event in _events(request, handle):
        if isinstance(event, TextDelta):
            text = splitter.feed(event.text) if splitter is not None else event.text
            if text:
                await _send(response, chunk({"content": text}))
            continue
        if await _stream_error(response, event):
            break
        reason: str = event.reason
        if splitter is not None:
            content, calls = splitter.finish()
            delta: dict[str, Any] = {"content": content} if content else {}
            if calls:
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(_calls(calls))]
                reason = "tool_calls"
            if delta:
                await _send(response, chunk(delta))
        await _send(response, chunk({}, reason))
        if params.include_usage:
            await _send(response, {**base, "choices": [], "usage": _usage(event)})
    await _done(response)
    return response


async def _open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


async def _send(response: web.StreamResponse, payload: Mapping[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")


async def _stream_error(response: web.StreamResponse, event: Finished) -> bool:
    """An engine fault mid-stream: the OpenAI client raises on an `error` event."""
    if event.reason != "error":
        return False
    error = ApiError(500, event.error or "engine error", code="engine_error")
    await _send(response, error.body())
    return True


async def _done(response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()


def _usage(finished: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": finished.cached_tokens},
    }


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    # base64 is what the openai client asks for by default: little-endian float32.
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def _names(tools: ToolParams) -> set[str]:
    return {t["function"]["name"] for t in tools.tools}


def _calls(calls: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in calls
    ]


def setup(app: web.Application, manager: ModelManager | None = None) -> None:
    """Add the /v1 routes (and the model manager behind them) to the node's app."""
    setup_service(app, manager)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
