"""What one decode step carries: a running sequence's state and how a batch is filled.

Every step takes the next token of each generating sequence first (they are what people
watch arrive), then chunks of pending prompts up to the step's budget, so a long prompt
never stalls the streams already running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .native import TokenBatch
from .request import GenerationHandle, GenerationRequest
from .sampling import Sampler
from .slots import Slot
from .text_stream import TextStream


@dataclass(slots=True, eq=False)
class RunningSequence:
    """A request admitted to the engine: its cells, its sampler, where it has got to."""

    handle: GenerationHandle
    sampler: Sampler
    text: TextStream
    submitted: float
    slot: Slot | None = None
    cached: int = 0
    pending: int | None = None
    """The last sampled token, not yet in the KV cache."""
    generated: int = 0
    first_token_at: float | None = None
    step_tokens: list[int] = field(default_factory=list)
    """The tokens this sequence put into the current step."""

    @property
    def request(self) -> GenerationRequest:
        return self.handle.request


def fill_batch(
    batch: TokenBatch,
    order: list[RunningSequence],
    *,
    n_batch: int,
    prefill_chunk: int,
    prompt_limit: Callable[[int], int] | None = None,
) -> tuple[list[tuple[RunningSequence, int]], int]:
    """Fill `batch` for one step of `order`; returns (rows to sample, prompt tokens).

    A row is a sequence whose logits this step produces, with its index in the batch.
    `prompt_limit(decode_rows)`, when given, caps the prompt tokens of the step
    (background steps, step_budget.py).
    """
    batch.clear()
    rows: list[tuple[RunningSequence, int]] = []
    for seq in order:
        seq.step_tokens = []
        if seq.pending is not None:
            assert seq.slot is not None
            index = batch.add(seq.pending, len(seq.slot.tokens), seq.slot.seq_id, logits=True)
            rows.append((seq, index))
            seq.step_tokens = [seq.pending]
    budget = n_batch - batch.n_tokens
    if rows:
        budget = min(budget, prefill_chunk)
    if prompt_limit is not None:
        budget = min(budget, prompt_limit(batch.n_tokens))
    prompt_tokens = 0
    for seq in order:
        if budget <= 0:
            break
        if seq.pending is not None or seq.generated:
            continue
        assert seq.slot is not None
        start = len(seq.slot.tokens)
        chunk = list(seq.request.prompt[start : start + budget])
        last = start + len(chunk) == len(seq.request.prompt)
        index = batch.add_span(chunk, start, seq.slot.seq_id, logits_last=last)
        if last:
            rows.append((seq, index))
        seq.step_tokens = chunk
        budget -= len(chunk)
        prompt_tokens += len(chunk)
    return rows, prompt_tokens
