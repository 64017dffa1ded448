"""Reading OpenAI request bodies into engine terms, with OpenAI-shaped 400s.

Unknown fields are ignored here (unlike the control plane): OpenAI clients send many
optional fields (`user`, `stream_options`, `parallel_tool_calls`...) a local server
can safely leave aside. Fields whose meaning the node cannot honour (`n` > 1) are
refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math
from typing import Any

from ..engines.llm.generate import GenerationOptions, OutputConstraint
from ..engines.llm.request import Priority
from ..engines.llm.sampling import SamplingParams
from .errors import ApiError

MAX_STOPS = 16
ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationParams:
    """Everything a chat or text completion asks for, validated."""

    model: str | None
    max_tokens: int | None
    sampling: SamplingParams
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    ignore_eos: bool
    priority: Priority

    def options(self, constraint: OutputConstraint | None) -> GenerationOptions:
        return GenerationOptions(
            max_tokens=self.max_tokens,
            sampling=self.sampling,
            stop=self.stop,
            ignore_eos=self.ignore_eos,
            priority=self.priority,
            constraint=constraint,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolParams:
    tools: tuple[Mapping[str, Any], ...]
    """Tools the model is told about (empty when tool_choice is none)."""
    forced: tuple[Mapping[str, Any], ...]
    """Tools one of which must be called (grammar-constrained); empty unless required."""


def invalid(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def generation_params(body: Mapping[str, Any]) -> GenerationParams:
    n = body.get("n")
    if n is not None and n != 1:  # null: the default, as OpenAI's API reads it
        raise invalid("only n=1 is supported", "n", "unsupported_value")
    model = _optional(body, "model", str)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise invalid("max_tokens must be a positive integer", "max_tokens")
    stream = _optional(body, "stream", bool) or False
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, Mapping) else False
    priority_name = _optional(body, "priority", str) or "interactive"
    try:
        priority = Priority[priority_name.upper()]
    except KeyError:
        raise invalid("priority must be interactive or background", "priority") from None
    return GenerationParams(
        model=model,
        max_tokens=max_tokens,
        sampling=_sampling(body),
        stop=_stops(body.get("stop")),
        stream=stream,
        include_usage=include_usage,
        ignore_eos=_optional(body, "ignore_eos", bool) or False,
        priority=priority,
    )


def _sampling(body: Mapping[str, Any]) -> SamplingParams:
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise invalid("seed must be an integer", "seed")
    return SamplingParams(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        top_k=int(_number(body, "top_k", 0, 0, 1_000_000)),
        min_p=_number(body, "min_p", 0.0, 0.0, 1.0),
        repeat_penalty=_number(body, "repeat_penalty", 1.0, 0.01, 10.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        seed=seed,
        logit_bias=_logit_bias(body.get("logit_bias")),
    )


def response_constraint(body: Mapping[str, Any]) -> OutputConstraint | None:
    """What `response_format` asks for (json_object / json_schema), or None for text.
    Compiled to a grammar by the engine call, off the event loop."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping):
        raise invalid("response_format must be an object", "response_format")
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputConstraint(kind="json")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise invalid(
                "response_format.json_schema.schema must be a JSON Schema object",
                "response_format",
            )
        return OutputConstraint(kind="json", schema=schema)
    raise invalid(
        "response_format.type must be text, json_object or json_schema", "response_format"
    )


def tool_params(body: Mapping[str, Any]) -> ToolParams:
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(_is_function_tool(t) for t in tools):
        raise invalid(
            "tools must be a list of {type: function, function: {name, parameters}}", "tools"
        )
    choice = body.get("tool_choice", "auto" if tools else "none")
    if choice == "none" or not tools:
        if isinstance(choice, Mapping) or choice == "required":
            raise invalid("tool_choice needs tools", "tool_choice")
        return ToolParams(tools=(), forced=())
    if choice == "auto":
        return ToolParams(tools=tuple(tools), forced=())
    if choice == "required":
        return ToolParams(tools=tuple(tools), forced=tuple(tools))
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        chosen = tuple(t for t in tools if t["function"]["name"] == name)
        if not chosen:
            raise invalid(f"tool_choice names {name!r}, which is not in tools", "tool_choice")
        return ToolParams(tools=tuple(tools), forced=chosen)
    raise invalid("tool_choice must be none, auto, required or a function", "tool_choice")


def forced_tool_constraint(tools: ToolParams) -> OutputConstraint | None:
    if not tools.forced:
        return None
    return OutputConstraint(kind="tool_call", tools=tools.forced)


def messages_param(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list", "messages", "missing_required_parameter")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise invalid(f"messages[{i}] needs a role: {', '.join(ROLES)}", f"messages[{i}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid(f"messages[{i}].content must be text", f"messages[{i}].content")
        if isinstance(content, list) and not all(isinstance(p, Mapping) for p in content):
            raise invalid(f"messages[{i}].content parts must be objects", f"messages[{i}].content")
        calls = message.get("tool_calls")
        if calls is not None and not (
            isinstance(calls, list) and all(_is_tool_call(c) for c in calls)
        ):
            raise invalid(
                f"messages[{i}].tool_calls must be [{{function: {{name, arguments}}}}]",
                f"messages[{i}].tool_calls",
            )
    return messages


def _is_tool_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, Mapping) else None
    return (
        isinstance(function, Mapping)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments", ""), str)
    )


def prompt_param(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("prompt must be a string", "prompt", "missing_required_parameter")
    return prompt


def _is_function_tool(tool: Any) -> bool:
    return (
        isinstance(tool, Mapping)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), Mapping)
        and isinstance(tool["function"].get("name"), str)
    )


def _optional(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise invalid(f"{name} must be a {kind.__name__}", name)
    return value


def _number(body: Mapping[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise invalid(f"{name} must be a number", name)
    if not lo <= value <= hi:
        raise invalid(f"{name} must be between {lo} and {hi}", name)
    return float(value)


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOPS:
        raise invalid(f"at most {MAX_STOPS} stop strings", "stop")
    return tuple(s for s in stops if s)


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid("logit_bias must map token ids to numbers", "logit_bias")
    try:
        return {int(k): max(-100.0, min(100.0, float(v))) for k, v in value.items()}
    except (TypeError, ValueError) as err:
        raise invalid("logit_bias must map token ids to numbers", "logit_bias") from err
