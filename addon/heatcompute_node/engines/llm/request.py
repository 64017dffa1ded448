"""What goes into the scheduler (a generation request) and what comes out (events).

The handle is the only thing an asyncio caller holds: it iterates the events of its
request and can cancel it. The engine thread pushes events through the loop's inbox
(delivery.py), which runs the handle's delivery on the loop, so the handle needs no
locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
import enum
import itertools
from typing import Literal

from .delivery import delivery_for
from .sampling import SamplingParams

type FinishReason = Literal["stop", "length", "cancelled", "error"]

_ids = itertools.count(1)


class Priority(enum.IntEnum):
    """Interactive requests are served first and never throttled by the heat governor."""

    INTERACTIVE = 0
    BACKGROUND = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """One completion to generate, prompt already tokenized."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    priority: Priority = Priority.INTERACTIVE
    withdraw_when_paused: bool = False
    """Background work that must not wait in the queue while the governor allows no
    background sequence (``max_background`` 0): it is finished as ``"cancelled"`` instead
    of being admitted, and its owner (the job executor) runs it again later. Sequences
    already running are not affected; requests over the API wait (they have a caller)."""
    request_id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text (possibly empty when a token completes no character yet)."""

    text: str
    tokens: int
    """Completion tokens generated so far."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """The last event of every request."""

    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    """Prompt tokens whose KV cells came from the prefix cache (not recomputed)."""
    text: str
    ttft_s: float | None
    latency_s: float
    error: str | None = None


type Event = TextDelta | Finished


class GenerationHandle:
    """The caller's side of one request: `async for event in handle`, or `cancel()`."""

    def __init__(
        self,
        request: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        cancel: Callable[[int], None],
    ) -> None:
        self.request = request
        self._inbox = delivery_for(loop)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._cancel = cancel
        self._words_sent = False
        """Set by the engine thread once a delta with text went out (push)."""
        self.finished: Finished | None = None

    @property
    def request_id(self) -> int:
        return self.request.request_id

    def push(self, event: Event) -> None:
        """Called from the engine thread. A stream's first words and its end go at once;
        the words between may wait for the loop's next wake (delivery.py). The first
        words are the first delta with text: a token may complete no character yet, and
        the text stream holds back what may be the start of a stop string."""
        urgent = not isinstance(event, TextDelta) or not self._words_sent
        if isinstance(event, TextDelta) and event.text:
            self._words_sent = True
        self._inbox.send(self._queue.put_nowait, event, urgent=urgent)

    def cancel(self) -> None:
        """Stop generating and free the sequence's KV cells at the next engine step."""
        if self.finished is None:
            self._cancel(self.request.request_id)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """The request's events; words that arrived together come as one delta."""
        queue = self._queue
        while self.finished is None:
            event = await queue.get()
            while isinstance(event, TextDelta) and not queue.empty():
                following = queue.get_nowait()
                if not isinstance(following, TextDelta):
                    yield event
                    event = following
                    break
                event = TextDelta(event.text + following.text, following.tokens)
            if isinstance(event, Finished):
                self.finished = event
            yield event

    async def result(self) -> Finished:
        """Wait for the end and return it (the whole text is in `Finished.text`)."""
        async for _ in self:
            pass
        assert self.finished is not None
        return self.finished
