"""The node's OpenAI-compatible chat API (`/v1/chat/completions`, `/v1/models`), typed.

Speaks the standard chat-completions contract, so it works against any OpenAI-shaped
server, and over the integration's own client (Home Assistant's session, the node's
token, the node's error classes).

An answer is streamed from the node and assembled here: the stream shows that a node
is alive and working (a stalled one times out between chunks, not after a fixed total),
and it gives the time to the first token, which the benchmarks and the logs report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
import json
import time
from typing import Any

import aiohttp

from .client import HeatcomputeClient, HeatcomputeError, HeatcomputeResponseError

# No total limit: a long prompt on a small machine takes a while to prefill, and with
# tools the node sends the answer whole, at its end. A node that says nothing for this
# long is taken for gone (one that crashes closes the connection, and is noticed at once).
CHAT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)

CONTEXT_LENGTH_CODES = frozenset({"context_length_exceeded", "context_length"})


class HeatcomputeContextLengthError(HeatcomputeResponseError):
    """The prompt does not fit the model's context."""

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt's tokens as the node counted them, when it says."""
        # Ours, then llama.cpp's server's spelling.
        return _count(self.details.get("prompt_tokens"), self.details.get("n_prompt_tokens"))

    @property
    def context_length(self) -> int | None:
        """Tokens the model's context holds, when the node says."""
        return _count(self.details.get("context_length"), self.details.get("n_ctx"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """One model the node serves (`GET /v1/models`)."""

    id: str
    context_length: int | None
    """Tokens the model's context holds, when the node says."""
    kind: str | None = None
    """"chat" or "embedding" on a heatcompute node; None where a server does not say."""
    state: str | None = None
    """"available", "loading", "loaded" or "failed", where the node says."""

    @property
    def chats(self) -> bool:
        """Whether it can answer a chat (a server that does not say is believed)."""
        return self.kind in (None, "chat")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        meta = data.get("meta") if isinstance(data.get("meta"), Mapping) else {}
        assert isinstance(meta, Mapping)
        kind, state = data.get("kind"), data.get("state")
        return cls(
            id=str(data["id"]),
            # Servers spell it differently: ours, vLLM/LM Studio, llama.cpp's server.
            context_length=_count(
                data.get("context_length"),
                data.get("max_model_len"),
                data.get("n_ctx"),
                meta.get("n_ctx"),
                meta.get("n_ctx_train"),
            ),
            kind=kind if isinstance(kind, str) else None,
            state=state if isinstance(state, str) else None,
        )


def _count(*values: Any) -> int | None:
    """The first positive whole number among `values`."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A tool call as the model wrote it: arguments are raw text, repaired later."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatReply:
    """One assembled answer of the model."""

    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    ttft_s: float | None = None
    """Seconds from sending the request to the first content or tool-call chunk."""


@dataclass(slots=True)
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


async def list_models(client: HeatcomputeClient) -> list[ModelInfo]:
    data = (await client.get_json("/v1/models")).get("data")
    return [
        ModelInfo.from_dict(item)
        for item in (data if isinstance(data, list) else [])
        if isinstance(item, Mapping) and "id" in item
    ]


async def chat(client: HeatcomputeClient, body: Mapping[str, Any]) -> ChatReply:
    """Send one chat-completions request (streamed) and return the whole answer."""
    request = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.monotonic()
    ttft: float | None = None
    content: list[str] = []
    calls: dict[int, _ToolCallParts] = {}
    finish: str | None = None
    usage: Mapping[str, Any] = {}
    try:
        async with client.post_stream("/v1/chat/completions", request, CHAT_TIMEOUT) as stream:
            async for chunk in _data_lines(stream):
                if isinstance(chunk.get("error"), Mapping):
                    # An error after the stream started: the node failed mid-answer.
                    raise HeatcomputeError(str(chunk["error"].get("message") or "error"))
                if isinstance(chunk.get("usage"), Mapping):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        content.append(str(delta["content"]))
                    for part in delta.get("tool_calls") or ():
                        _add_tool_call_part(calls, part)
                    if (delta.get("content") or delta.get("tool_calls")) and ttft is None:
                        ttft = time.monotonic() - started
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
    except HeatcomputeResponseError as err:
        if err.code in CONTEXT_LENGTH_CODES or "context" in str(err).lower():
            raise HeatcomputeContextLengthError(
                err.status, str(err), err.code, err.details
            ) from err
        raise
    if finish is None:
        # The stream ended without saying why: the node went away mid-answer.
        raise HeatcomputeError("the node ended the answer early")
    details = usage.get("prompt_tokens_details")
    return ChatReply(
        content="".join(content),
        tool_calls=tuple(
            ToolCall(
                id=parts.id or f"call_{index}", name=parts.name, arguments="".join(parts.arguments)
            )
            for index, parts in sorted(calls.items())
            if parts.name
        ),
        finish_reason=finish,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        cached_tokens=_int(details.get("cached_tokens")) if isinstance(details, Mapping) else None,
        ttft_s=ttft,
    )


def _add_tool_call_part(calls: dict[int, _ToolCallParts], part: Mapping[str, Any]) -> None:
    index = part.get("index")
    parts = calls.setdefault(index if isinstance(index, int) else len(calls), _ToolCallParts())
    if part.get("id"):
        parts.id = str(part["id"])
    function = part.get("function") or {}
    if function.get("name"):
        parts.name += str(function["name"])
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        parts.arguments.append(arguments)
    elif isinstance(arguments, Mapping):
        # Some servers send arguments as an object rather than JSON text.
        parts.arguments.append(json.dumps(arguments))


async def _data_lines(stream: aiohttp.StreamReader) -> AsyncIterator[Mapping[str, Any]]:
    """The JSON objects of an OpenAI event stream, up to `data: [DONE]`."""
    async for raw in stream:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments (keep-alives), event names
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        if isinstance(chunk, Mapping):
            yield chunk


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tool_call_dicts(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls in the shape an assistant message carries them back to the model."""
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]
