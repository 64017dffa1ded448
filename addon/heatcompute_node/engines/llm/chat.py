"""Chat messages -> prompt text, through the model's own Jinja2 chat template.

Templates that know about tools get them as `tools=`; for the many small models whose
template does not (SmolLM2's), the tools and the call format are described in the
system message instead, and earlier calls and results are written out as text. Either
way the model answers a call as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
the format `tool_calls.parse_tool_calls` reads back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
import json
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

type Message = Mapping[str, Any]
type Tool = Mapping[str, Any]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


class ChatTemplateError(ValueError):
    """The messages could not be rendered (the template raised, or a message is malformed)."""


class ChatTemplate:
    """A model's chat template, ready to render."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source or CHATML
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(self.source)
        except jinja2.TemplateSyntaxError as err:
            raise ChatTemplateError(f"the model's chat template does not parse: {err}") from err
        self._bos = bos_token
        self._eos = eos_token
        self.supports_tools = "tools" in self.source

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        add_generation_prompt: bool = True,
    ) -> str:
        msgs = [_normalise(m) for m in messages]
        extra: dict[str, Any] = {}
        if tools and self.supports_tools:
            extra["tools"] = list(tools)
        elif tools:
            msgs = _describe_tools(msgs, tools)
        if not self.supports_tools:
            msgs = [_tool_turn_as_text(m) for m in msgs]
        try:
            return self._template.render(
                messages=msgs,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos,
                eos_token=self._eos,
                **extra,
            )
        except jinja2.TemplateError as err:
            raise ChatTemplateError(f"the chat template rejected the messages: {err}") from err


def tool_instructions(tools: Sequence[Tool]) -> str:
    lines = [
        "You can call these tools (JSON Schema of each function's arguments):",
        *(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools),
        "To call a tool, answer with only "
        f'{TOOL_CALL_OPEN}{{"name": <function name>, "arguments": <arguments object>}}'
        f"{TOOL_CALL_CLOSE}.",
    ]
    return "\n".join(lines)


def _describe_tools(messages: list[dict[str, Any]], tools: Sequence[Tool]) -> list[dict[str, Any]]:
    text = tool_instructions(tools)
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{text}"
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _tool_turn_as_text(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if message["role"] == "assistant" and calls:
        written = "".join(
            f"{TOOL_CALL_OPEN}"
            + json.dumps(
                {
                    "name": c["function"]["name"],
                    "arguments": _loads_or_text(c["function"].get("arguments", "{}")),
                },
                ensure_ascii=False,
            )
            + TOOL_CALL_CLOSE
            for c in calls
        )
        return {"role": "assistant", "content": (message.get("content") or "") + written}
    if message["role"] == "tool":
        return {"role": "tool", "content": f"<tool_response>{message['content']}</tool_response>"}
    return message


def _normalise(message: Message) -> dict[str, Any]:
    """OpenAI allows content as a list of parts; templates expect a string."""
    out = dict(message)
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = "".join(
            part.get("text", "") for part in content if isinstance(part, Mapping)
        )
    elif content is None:
        out["content"] = ""
    return out


def _loads_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return value


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _raise(message: str) -> None:
    raise ChatTemplateError(message)
