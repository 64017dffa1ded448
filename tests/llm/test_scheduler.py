"""The scheduler on a tiny random model: batching, prefix cache, cancel, knobs, faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from heatcompute_node.engines.llm.errors import ContextLengthError, EngineOverloadedError
from heatcompute_node.engines.llm.request import (
    Finished,
    GenerationRequest,
    Priority,
    TextDelta,
)
from heatcompute_node.engines.llm.sampling import GrammarError, SamplingParams
from heatcompute_node.engines.llm.scheduler import Scheduler
from heatcompute_node.engines.llm.tokenizer import Tokenizer

from .conftest import make_scheduler

GREEDY = SamplingParams(temperature=0)


def request(
    tokenizer: Tokenizer, text: str = "hello world", max_tokens: int = 16, **kwargs: object
) -> GenerationRequest:
    return GenerationRequest(
        prompt=tuple(tokenizer.tokenize(text)),
        max_tokens=max_tokens,
        ignore_eos=True,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_eight_concurrent_requests_get_their_token_counts(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    counts = [5, 9, 13, 17, 21, 25, 29, 33]
    handles = [
        engine.submit(request(tiny_tokenizer, f"prompt number {i}", n))
        for i, n in enumerate(counts)
    ]
    results = await asyncio.gather(*(h.result() for h in handles))
    assert [r.completion_tokens for r in results] == counts
    assert all(r.reason == "length" for r in results)
    assert engine.stats().requests_total == 8


async def test_a_late_request_joins_the_running_batch(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    # ~0.4 s of tokens, from the first words on (they reach the loop at once; later words
    # come up to 20 ms apart): the short request runs well inside it.
    long = engine.submit(request(tiny_tokenizer, "a long answer", 1000))
    async for event in long:
        if isinstance(event, TextDelta):
            break
    short = await engine.submit(request(tiny_tokenizer, "a short one", 3)).result()
    # The short request finished while the long one was still generating.
    assert short.completion_tokens == 3
    assert long.finished is None
    assert (await long.result()).completion_tokens == 1000


async def test_streamed_text_adds_up_to_the_final_text(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    handle = engine.submit(request(tiny_tokenizer, max_tokens=40))
    pieces = [e.text async for e in handle if isinstance(e, TextDelta)]
    assert handle.finished is not None
    assert "".join(pieces) == handle.finished.text


async def test_prefix_cache_reuses_cells_and_keeps_the_output(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    system = "You are a helpful voice assistant for the house. " * 20
    first = request(tiny_tokenizer, system + "Turn on the light.", 12, sampling=GREEDY)
    second = request(tiny_tokenizer, system + "Turn off the light.", 12, sampling=GREEDY)

    cold = make_scheduler(tiny_model, tiny_tokenizer)
    try:
        expected = await cold.submit(second).result()
    finally:
        cold.stop()

    warm = make_scheduler(tiny_model, tiny_tokenizer)
    try:
        await warm.submit(first).result()
        got = await warm.submit(second).result()
    finally:
        warm.stop()
    assert expected.cached_tokens == 0
    shared = len(tiny_tokenizer.tokenize(system))
    assert got.cached_tokens >= shared - 2
    assert got.text == expected.text


async def test_prefix_of_a_running_sequence_is_shared(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    system = "Shared system prompt for every turn of the conversation. " * 10
    running = engine.submit(request(tiny_tokenizer, system + "one", 200))
    async for event in running:
        if isinstance(event, TextDelta):
            break
    second = await engine.submit(request(tiny_tokenizer, system + "two", 4)).result()
    assert second.cached_tokens >= len(tiny_tokenizer.tokenize(system)) - 2
    running.cancel()
    await running.result()


async def test_cancel_frees_the_cells_so_a_long_prompt_fits(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    engine = make_scheduler(tiny_model, tiny_tokenizer, n_ctx=512, gen_reserve=16)
    try:
        text = "word " * 400
        handle = engine.submit(request(tiny_tokenizer, text, 100_000))
        async for event in handle:
            if isinstance(event, TextDelta):
                break
        handle.cancel()
        finished = await handle.result()
        assert finished.reason == "cancelled"
        assert engine.stats().kv_cells_used == 0
        long = await engine.submit(request(tiny_tokenizer, "other " * 450, 8)).result()
        assert long.reason == "length"
        assert long.completion_tokens == 8
    finally:
        engine.stop()


async def test_cancel_while_queued(tiny_model: Path, tiny_tokenizer: Tokenizer) -> None:
    engine = make_scheduler(tiny_model, tiny_tokenizer, n_slots=1)
    try:
        running = engine.submit(request(tiny_tokenizer, max_tokens=300))
        queued = engine.submit(request(tiny_tokenizer, max_tokens=5))
        queued.cancel()
        assert (await queued.result()).reason == "cancelled"
        assert (await running.result()).completion_tokens == 300
    finally:
        engine.stop()


async def test_prompt_longer_than_the_context_is_refused(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    with pytest.raises(ContextLengthError) as err:
        engine.submit(request(tiny_tokenizer, "word " * 2000))
    assert err.value.limit == engine.context_limit


async def test_max_tokens_is_clamped_to_the_context(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    req = request(tiny_tokenizer, "word " * 1000, 10_000)
    result = await engine.submit(req).result()
    assert result.reason == "length"
    assert result.prompt_tokens + result.completion_tokens <= engine.context_limit


async def test_a_full_queue_is_refused_with_a_retry_hint(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    engine = make_scheduler(tiny_model, tiny_tokenizer, n_slots=1, max_queue=2)
    try:
        engine.set_knobs(max_background=0)  # keeps background requests waiting
        waiting = [
            engine.submit(request(tiny_tokenizer, priority=Priority.BACKGROUND)) for _ in range(2)
        ]
        with pytest.raises(EngineOverloadedError) as err:
            engine.submit(request(tiny_tokenizer))
        assert err.value.retry_after_s >= 1
        engine.set_knobs(max_background=1)
        assert [(await h.result()).reason for h in waiting] == ["length", "length"]
    finally:
        engine.stop()


async def test_background_waits_for_the_governor_interactive_does_not(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    engine.set_knobs(max_background=0)
    background = engine.submit(request(tiny_tokenizer, priority=Priority.BACKGROUND))
    interactive = await engine.submit(request(tiny_tokenizer, max_tokens=4)).result()
    assert interactive.completion_tokens == 4
    assert background.finished is None
    assert engine.stats().queue_depth == 1
    knobs = engine.set_knobs(max_background=2, duty_cycle=0.5, background_threads=1)
    assert knobs.max_background == 2
    assert (await background.result()).completion_tokens == 16


async def test_paused_background_hands_back_job_work_and_lets_running_finish(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    """max_background 0: no new sequence starts; running ones finish; job work goes back.

    The running sequence must still run when the pause comes, or the job item takes its
    place first: the tiny model writes 60 tokens in ~20 ms, and a stream's words after
    the first reach the loop up to 20 ms apart. At a 1 % duty cycle its 200 tokens take
    ~7 s, so it is running when the job item is queued and the pause comes; then the duty
    cycle goes back to 100 % and it finishes.
    """
    engine.set_knobs(max_background=1, duty_cycle=0.01)
    running = engine.submit(request(tiny_tokenizer, max_tokens=200, priority=Priority.BACKGROUND))
    async for event in running:
        if isinstance(event, TextDelta):
            break
    job_item = engine.submit(
        request(tiny_tokenizer, priority=Priority.BACKGROUND, withdraw_when_paused=True)
    )
    api_request = engine.submit(request(tiny_tokenizer, priority=Priority.BACKGROUND))
    engine.set_knobs(max_background=0, duty_cycle=1.0)
    handed_back = await job_item.result()
    assert (handed_back.reason, handed_back.completion_tokens) == ("cancelled", 0)
    # Submitted while paused: handed back too, without starting.
    late = await engine.submit(
        request(tiny_tokenizer, priority=Priority.BACKGROUND, withdraw_when_paused=True)
    ).result()
    assert (late.reason, late.completion_tokens) == ("cancelled", 0)
    assert (await running.result()).completion_tokens == 200
    # The request over the API waits for the governor, and is not started meanwhile.
    await asyncio.sleep(0.2)
    assert api_request.finished is None
    assert engine.stats().queue_depth == 1
    assert engine.stats().requests_active == 0
    engine.set_knobs(max_background=1)
    assert (await api_request.result()).completion_tokens == 16


async def test_duty_cycle_zero_pauses_background_until_raised(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    engine.set_knobs(duty_cycle=0.0)
    background = engine.submit(request(tiny_tokenizer, max_tokens=50, priority=Priority.BACKGROUND))
    # Interactive work still runs at once, and the background request stays paused.
    done = await engine.submit(request(tiny_tokenizer, max_tokens=3)).result()
    assert done.completion_tokens == 3
    assert background.finished is None
    engine.set_knobs(duty_cycle=1.0)
    assert (await background.result()).completion_tokens == 50


async def test_stop_strings_end_the_answer_and_never_leak(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    probe = await engine.submit(request(tiny_tokenizer, max_tokens=30, sampling=GREEDY)).result()
    stop = probe.text[10:14]
    assert stop.strip()
    result = await engine.submit(
        request(tiny_tokenizer, max_tokens=30, sampling=GREEDY, stop=(stop,))
    ).result()
    assert result.reason == "stop"
    assert stop not in result.text
    assert probe.text.startswith(result.text)


async def test_same_seed_same_text(engine: Scheduler, tiny_tokenizer: Tokenizer) -> None:
    params = SamplingParams(temperature=1.0, top_k=40, top_p=0.9, min_p=0.05, seed=42)
    a = await engine.submit(request(tiny_tokenizer, max_tokens=20, sampling=params)).result()
    b = await engine.submit(request(tiny_tokenizer, max_tokens=20, sampling=params)).result()
    assert a.text == b.text


async def test_grammar_constrains_the_output(engine: Scheduler, tiny_tokenizer: Tokenizer) -> None:
    grammar = 'root ::= ("yes" | "no") "."'
    params = SamplingParams(temperature=1.0, seed=1, grammar=grammar, repeat_penalty=1.1)
    req = GenerationRequest(
        prompt=tuple(tiny_tokenizer.tokenize("answer")), max_tokens=10, sampling=params
    )
    result = await engine.submit(req).result()
    assert result.text in ("yes.", "no.")
    assert result.reason == "stop"


async def test_a_broken_grammar_is_refused(engine: Scheduler, tiny_tokenizer: Tokenizer) -> None:
    with pytest.raises(GrammarError):
        engine.submit(request(tiny_tokenizer, sampling=SamplingParams(grammar="root ::= (")))


async def test_an_engine_fault_fails_the_running_requests_and_recovers(
    engine: Scheduler, tiny_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = engine.submit(request(tiny_tokenizer, max_tokens=10_000))
    async for event in running:
        if isinstance(event, TextDelta):
            break
    context = engine._runtime.context

    def broken(batch: object) -> int:
        raise RuntimeError("simulated native failure")

    monkeypatch.setattr(context, "decode", broken)
    failed = await running.result()
    assert failed.reason == "error"
    assert failed.error is not None
    assert "simulated" in failed.error
    after = await engine.submit(request(tiny_tokenizer, max_tokens=5)).result()
    assert after.reason == "length"
    assert engine.stats().faults == 1
    assert engine._runtime.context is not context


async def test_stats_report_throughput_latency_and_cells(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    results = await asyncio.gather(
        *(engine.submit(request(tiny_tokenizer, max_tokens=10)).result() for _ in range(3))
    )
    assert all(isinstance(r, Finished) for r in results)
    stats = engine.stats()
    assert stats.tokens_per_s > 0
    assert stats.tokens_total == 30
    assert stats.ttft_p95_s is not None
    assert stats.latency_p50_s is not None
    assert stats.tokens_per_request == 10
    # What they computed went to RAM as prefix cache; the KV cache holds what runs.
    assert stats.kv_cells_used == 0 < stats.kv_cells_total
    assert stats.prompt_cache_entries >= 1
    assert stats.prompt_cache_bytes > 0
    assert stats.requests_active == 0


async def test_a_finished_answer_stays_cached_a_background_one_keeps_its_prompt_only(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    """With the prompt cache in the KV cache (no RAM for it): a conversation goes on
    from its last answer, so a person's answer stays cached; a background item is never
    continued, so only its prompt stays: stale cells cost every later step attention
    work. (The same in RAM: test_prompt_cache.py.)"""
    engine = make_scheduler(tiny_model, tiny_tokenizer, prompt_cache_bytes=0)
    try:
        await _finished_answer_stays_cached(engine, tiny_tokenizer)
    finally:
        engine.stop()


async def _finished_answer_stays_cached(engine: Scheduler, tiny_tokenizer: Tokenizer) -> None:
    person = request(tiny_tokenizer, "a question from a person", max_tokens=30)
    done = await engine.submit(person).result()
    assert engine.stats().kv_cells_used == len(person.prompt) + done.completion_tokens - 1

    item = request(
        tiny_tokenizer, "an item of a batch job", max_tokens=30, priority=Priority.BACKGROUND
    )
    finished = await engine.submit(item).result()
    # Both prompts start with BOS: the item shares that cell and leaves the person's
    # cache whole rather than cutting it down to the one shared token.
    assert finished.cached_tokens == 1
    assert engine.stats().kv_cells_used == (
        len(person.prompt) + done.completion_tokens - 1 + len(item.prompt) - 1
    )
    again = await engine.submit(person).result()
    assert again.cached_tokens == len(person.prompt) - 1
