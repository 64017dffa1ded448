"""What the model reads: a system prompt made for the node's prefix cache, and a history
that fits the model's context.

Prefix cache: the node keeps the KV cells of the last prompts and reuses the longest
common prefix of a new one (docs/voice.md). The system prompt and the tool definitions
are the long part (the Assist API's instructions, the exposed devices, the intent tools:
thousands of tokens), so they must come out byte-identical every turn. Home Assistant
2025.4 starts its own system prompt with the current time to the second, which would
make every turn a cache miss; so the agent composes its own, and what changes (the time)
travels apart from it, after everything that stays the same.

Context fit: the cost of the system prompt, the tools and the history is estimated from
their length, calibrated by what the node reports it actually counted. History goes
first when the total is too large; if the system prompt and tools alone do not fit,
the user is told so (`PromptTooLargeError`): nothing is cut silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
import json
from typing import Any

# Tokens a chat template adds around every message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 6
# Until the node has told how many tokens a prompt was, assume few characters per token:
# overestimating warns a little early; underestimating fails at the node.
DEFAULT_CHARS_PER_TOKEN = 3.0
# Tokens kept free beyond the answer's `max_tokens`, for the estimate's error.
SAFETY_MARGIN = 0.05


class PromptTooLargeError(Exception):
    """The system prompt and the tools alone do not fit the model's context."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"the prompt needs about {needed} tokens; the model holds {limit}")
        self.needed = needed
        self.limit = limit


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemPrompt:
    """A system prompt in two parts: a stable prefix and a volatile suffix."""

    stable: str
    """Instructions, the LLM API's prompt, the extra system prompt: same every turn."""
    volatile: str = ""
    """What changes between turns (the time): sent after all that stays the same."""

    @property
    def text(self) -> str:
        return f"{self.stable}\n{self.volatile}" if self.volatile else self.stable


def compose_system_prompt(
    *,
    instructions: str,
    api_prompt: str | None,
    extra: str | None,
    now: datetime | None,
) -> SystemPrompt:
    """The agent's system prompt; `now` None leaves the time out (a tool tells it)."""
    parts = [part.strip() for part in (instructions, api_prompt, extra) if part and part.strip()]
    volatile = (
        f"Current time is {now:%H:%M}. Today's date is {now:%Y-%m-%d} ({now:%A})."
        if now is not None
        else ""
    )
    return SystemPrompt(stable="\n".join(parts), volatile=volatile)


@dataclass(slots=True)
class TokenEstimator:
    """Tokens from characters, calibrated by the node's own counts for each model."""

    chars_per_token: dict[str, float] = field(default_factory=dict)

    def ratio(self, model: str) -> float:
        return self.chars_per_token.get(model, DEFAULT_CHARS_PER_TOKEN)

    def tokens(self, model: str, chars: int) -> int:
        return int(chars / self.ratio(model)) + 1

    def calibrate(self, model: str, chars: int, prompt_tokens: int | None) -> None:
        """Learn from a prompt the node counted; move slowly, never trust one sample fully."""
        if not prompt_tokens or chars < 200:
            return
        seen = chars / prompt_tokens
        old = self.chars_per_token.get(model)
        # Lean to the safe side: 5 % fewer characters per token than measured.
        new = 0.95 * seen
        self.chars_per_token[model] = new if old is None else 0.5 * old + 0.5 * new


def message_chars(message: dict[str, Any]) -> int:
    """Characters the model reads for one OpenAI-shaped message."""
    chars = len(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        chars += len(call["function"]["name"]) + len(call["function"]["arguments"]) + 16
    return chars


def tools_chars(tools: Sequence[dict[str, Any]]) -> int:
    """Characters of the tool definitions as a chat template writes them (JSON)."""
    return len(json.dumps(list(tools), separators=(",", ":"))) if tools else 0


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    messages: list[dict[str, Any]]
    estimated_tokens: int
    dropped_turns: int
    """Earlier turns left out to make room (never the current one)."""


def fit_to_context(
    *,
    system: dict[str, Any],
    history: Sequence[Sequence[dict[str, Any]]],
    current: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]],
    context_length: int | None,
    max_tokens: int,
    estimator: TokenEstimator,
    model: str,
) -> FittedPrompt:
    """Messages that fit: system prompt, as many recent turns as fit, the current turn.

    `history` holds the earlier turns, oldest first, each a list of messages; `current`
    is this turn so far (the user's message, tool calls and their results).
    """

    def cost(messages: Sequence[dict[str, Any]]) -> int:
        chars = sum(message_chars(m) for m in messages)
        return estimator.tokens(model, chars) + MESSAGE_OVERHEAD_TOKENS * len(messages)

    fixed = cost([system, *current]) + estimator.tokens(model, tools_chars(tools))
    turns = list(history)
    turn_costs = [cost(turn) for turn in turns]
    total = fixed + sum(turn_costs)
    if context_length is None:
        # Unknown context: send it all; the node's own error is handled by the caller.
        return FittedPrompt(_join(system, turns, current), total, 0)
    budget = int(context_length * (1 - SAFETY_MARGIN)) - max_tokens
    if fixed > budget:
        raise PromptTooLargeError(fixed + max_tokens, context_length)
    dropped = 0
    while turns and total > budget:
        total -= turn_costs.pop(0)
        turns.pop(0)
        dropped += 1
    return FittedPrompt(_join(system, turns, current), total, dropped)


def _join(
    system: dict[str, Any],
    turns: Sequence[Sequence[dict[str, Any]]],
    current: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    return [system, *(m for turn in turns for m in turn), *current]
