"""The one way into a chat model: messages (or a prompt) + options -> a running generation.

Rendering the chat template, tokenizing, turning a JSON Schema or forced tools into a
grammar, and compiling that grammar (in the scheduler's ``submit``) are all here, and
all run on a worker thread (as llama_cpp.server sends every llama call to a thread
pool): a long tool schema or a long history never stalls the event loop. The HTTP
handlers and the job runner both call :func:`start_chat` / :func:`start_completion`;
they only translate their own inputs and outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
import functools
import json
from typing import Any, Literal, Protocol

from .chat import ChatTemplate, Message, Tool
from .constraints import json_object_grammar, json_schema_grammar, tool_call_grammar
from .request import GenerationHandle, GenerationRequest, Priority
from .sampling import SamplingParams
from .scheduler import Scheduler
from .tokenizer import Tokenizer


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputConstraint:
    """What the output must be; compiled to a grammar off the event loop.

    ``json``: any JSON object (``schema`` None) or JSON valid against ``schema``.
    ``tool_call``: exactly one call of one of ``tools``.
    """

    kind: Literal["json", "tool_call"]
    schema: Mapping[str, Any] | None = None
    tools: tuple[Tool, ...] = ()

    def grammar(self) -> str:
        """GBNF; raises :class:`~.constraints.SchemaError` for a schema it can't express.

        Cached by content: a voice assistant sends the same tools with every request,
        and converting a long schema is pure Python that holds the GIL for tens of ms.
        """
        if self.kind == "json" and self.schema is None:
            return _grammar("json", "null")
        value = self.tools if self.kind == "tool_call" else self.schema
        return _grammar(self.kind, json.dumps(value, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _grammar(kind: str, value: str) -> str:
    if kind == "tool_call":
        return tool_call_grammar(json.loads(value))
    schema = json.loads(value)
    return json_object_grammar() if schema is None else json_schema_grammar(schema)


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationOptions:
    """How to generate, whoever asks (an HTTP request, a job item)."""

    max_tokens: int | None = None
    """None: as many as the context leaves."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    priority: Priority = Priority.INTERACTIVE
    withdraw_when_paused: bool = False
    constraint: OutputConstraint | None = None


class ChatEngine(Protocol):
    """A loaded chat model's parts that generation needs (models.ChatModel)."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def template(self) -> ChatTemplate: ...

    @property
    def scheduler(self) -> Scheduler: ...


async def start_chat(
    engine: ChatEngine,
    messages: Sequence[Message],
    options: GenerationOptions,
    *,
    tools: Sequence[Tool] = (),
) -> GenerationHandle:
    """Render, tokenize, compile and queue a chat request; its events arrive on this loop.

    Raises ChatTemplateError, SchemaError, GrammarError or the scheduler's EngineErrors.
    """
    return await _off_loop(
        functools.partial(_submit_chat, engine, list(messages), tuple(tools), options)
    )


async def start_completion(
    engine: ChatEngine, prompt: str, options: GenerationOptions
) -> GenerationHandle:
    """Tokenize (control tokens as text), compile and queue a text completion."""
    return await _off_loop(functools.partial(_submit_text, engine, prompt, options))


async def _off_loop(
    submit: Callable[[asyncio.AbstractEventLoop], GenerationHandle],
) -> GenerationHandle:
    """Run ``submit`` on a worker thread. A caller cancelled meanwhile (a client gone)
    still gets its request cancelled once it is queued: nothing runs for nobody."""
    loop = asyncio.get_running_loop()
    # The loop's own worker threads (`python -m heatcompute_node` gives them the
    # process's priority): a pool of the engine's own would outlive the app that used it.
    future = loop.run_in_executor(None, submit, loop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_cancel_queued)
        raise


def _cancel_queued(future: asyncio.Future[GenerationHandle]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().cancel()


def chat_tokens(
    engine: ChatEngine, messages: Sequence[Message], tools: Sequence[Tool] = ()
) -> list[int]:
    """The prompt tokens of a chat: the template may write the BOS itself; the tokenizer
    adds one only if it didn't."""
    prompt = engine.template.render(messages, tools=tools)
    tokenizer = engine.tokenizer
    bos = tokenizer.special_text(tokenizer.bos) if tokenizer.bos >= 0 else ""
    return tokenizer.tokenize(prompt, add_special=not (bos and prompt.startswith(bos)))


def _submit_chat(
    engine: ChatEngine,
    messages: list[Message],
    tools: tuple[Tool, ...],
    options: GenerationOptions,
    loop: asyncio.AbstractEventLoop,
) -> GenerationHandle:
    return _submit(engine, chat_tokens(engine, messages, tools), options, loop)


def _submit_text(
    engine: ChatEngine, prompt: str, options: GenerationOptions, loop: asyncio.AbstractEventLoop
) -> GenerationHandle:
    tokens = engine.tokenizer.tokenize(prompt, add_special=True, parse_special=False)
    return _submit(engine, tokens, options, loop)


def _submit(
    engine: ChatEngine,
    tokens: list[int],
    options: GenerationOptions,
    loop: asyncio.AbstractEventLoop,
) -> GenerationHandle:
    scheduler = engine.scheduler
    sampling = options.sampling
    if options.constraint is not None:
        sampling = replace(sampling, grammar=options.constraint.grammar())
    request = GenerationRequest(
        prompt=tuple(tokens),
        max_tokens=options.max_tokens or scheduler.context_limit,
        sampling=sampling,
        stop=options.stop,
        ignore_eos=options.ignore_eos,
        priority=options.priority,
        withdraw_when_paused=options.withdraw_when_paused,
    )
    # The grammar compiles here too, in the sampler `submit` builds.
    return scheduler.submit(request, loop)
