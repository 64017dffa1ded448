"""Background steps stay short, so a person's request never waits long for one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from heatcompute_node.engines.llm.native import ContextConfig, TokenBatch
from heatcompute_node.engines.llm.request import GenerationRequest, Priority, TextDelta
from heatcompute_node.engines.llm.runtime import Runtime
from heatcompute_node.engines.llm.sampling import SamplingParams
from heatcompute_node.engines.llm.scheduler import Scheduler, SchedulerConfig
from heatcompute_node.engines.llm.step_budget import BackgroundStepBudget
from heatcompute_node.engines.llm.tokenizer import Tokenizer

GREEDY = SamplingParams(temperature=0)


def test_the_budget_starts_small_and_follows_the_measured_speed() -> None:
    budget = BackgroundStepBudget(target_s=0.05, min_prompt_tokens=8)
    assert budget.prompt_tokens(decode_rows=0) == 16  # nothing measured yet

    budget.record(seconds=0.1, tokens=100)  # 1 ms per token
    assert budget.prompt_tokens(decode_rows=0) == 50
    assert budget.prompt_tokens(decode_rows=30) == 20
    # Many sequences generating: new ones still get their prompt started.
    assert budget.prompt_tokens(decode_rows=60) == 8

    for _ in range(40):  # the machine got 4x slower: the budget follows, smoothed
        budget.record(seconds=0.4, tokens=100)
    assert 12 <= budget.prompt_tokens(decode_rows=0) <= 13
    budget.record(seconds=0.0, tokens=10)  # nonsense samples are ignored
    budget.record(seconds=1.0, tokens=0)
    assert 12 <= budget.prompt_tokens(decode_rows=0) <= 13


class _Recorder:
    """Wraps a runtime's decode to log how many tokens each step carried."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def load(self, model: Path) -> Runtime:
        runtime = Runtime.load(model, ContextConfig(n_ctx=1024, n_batch=512, n_seq_max=4))
        decode = runtime.context.decode

        def logged(batch: TokenBatch) -> int:
            self.steps.append(batch.n_tokens)
            return decode(batch)

        runtime.context.decode = logged  # type: ignore[method-assign]
        return runtime


async def _run(
    model: Path, tokenizer: Tokenizer, priority: Priority, step_s: float
) -> tuple[list[int], str]:
    recorder = _Recorder()
    config = SchedulerConfig(n_slots=4, n_batch=512, n_threads=1, background_step_s=step_s)
    engine = Scheduler(tokenizer, lambda: recorder.load(model), config)
    try:
        prompt = tuple(tokenizer.tokenize(" ".join(f"word{i}" for i in range(120))))
        assert len(prompt) > 200
        handle = engine.submit(
            GenerationRequest(
                prompt=prompt, max_tokens=4, ignore_eos=True, sampling=GREEDY, priority=priority
            )
        )
        result = await handle.result()
    finally:
        engine.stop()
    return recorder.steps, result.text


async def test_a_long_background_prompt_is_fed_in_short_steps(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    """With a 1 µs budget each background step carries only the floor of 8 prompt tokens;
    a person's request with the same prompt goes in one step, and the answers agree."""
    background, text_bg = await _run(tiny_model, tiny_tokenizer, Priority.BACKGROUND, 1e-6)
    people, text_people = await _run(tiny_model, tiny_tokenizer, Priority.INTERACTIVE, 1e-6)

    assert max(background) <= 16  # the first guess, then the floor
    assert max(background[1:]) <= 8
    assert len(background) > 25
    assert max(people) > 200
    assert text_bg == text_people


async def test_a_person_is_served_in_steps_of_their_own(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    """The latency guarantee, counted in decode steps rather than timed: once a person's
    request is submitted, at most one more step of background work starts; every step
    from then until the answer is complete carries the person's tokens only; then the
    background work goes on where it stopped and finishes."""
    engine = Scheduler(
        tiny_tokenizer,
        lambda: Runtime.load(tiny_model, ContextConfig(n_ctx=2048, n_seq_max=8, n_threads=1)),
        SchedulerConfig(n_slots=8, n_threads=1),
    )
    steps: list[tuple[Priority, ...]] = []
    fill = engine._fill_batch

    def logged(order: list[Any], serves_people: bool) -> Any:
        steps.append(tuple(seq.request.priority for seq in order))
        return fill(order, serves_people)

    engine._fill_batch = logged  # type: ignore[method-assign]
    try:
        background = [
            engine.submit(
                GenerationRequest(
                    prompt=tuple(tiny_tokenizer.tokenize(f"background item {i}")),
                    max_tokens=300,
                    ignore_eos=True,
                    priority=Priority.BACKGROUND,
                )
            )
            for i in range(4)
        ]
        for handle in background:  # all four are generating
            async for event in handle:
                if isinstance(event, TextDelta):
                    break
        submitted_at = len(steps)
        person = engine.submit(
            GenerationRequest(
                prompt=tuple(tiny_tokenizer.tokenize("turn on the kitchen light")),
                max_tokens=20,
                ignore_eos=True,
            )
        )
        answer = await person.result()
        answered_at = len(steps)
        finished = await asyncio.gather(*(h.result() for h in background))
    finally:
        engine.stop()

    # The engine goes on with background steps while the answer travels to this task,
    # so the person's steps are found in the log, not cut at the moment `answer` came.
    served = steps[submitted_at:answered_at]
    first = next(i for i, step in enumerate(served) if Priority.INTERACTIVE in step)
    last = max(i for i, step in enumerate(served) if Priority.INTERACTIVE in step)
    assert first <= 1
    assert all(step == (Priority.INTERACTIVE,) for step in served[first : last + 1])
    # 20 tokens: one step prefills the prompt and samples the first, 19 more decode.
    assert last + 1 - first == 20
    assert answer.completion_tokens == 20
    assert [r.completion_tokens for r in finished] == [300] * 4
    assert all(Priority.BACKGROUND in step for step in steps[submitted_at + last + 1 :])
