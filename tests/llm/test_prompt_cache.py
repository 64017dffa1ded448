"""Idle prefixes live in RAM, not in the KV cache: saved when a request ends, copied back
on a hit, bounded in bytes, least recently used out first.

Real llama.cpp throughout: the tiny random model for the mechanics, SmolLM2 for the
continuation a person would read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from heatcompute_node.engines.llm.prompt_cache import PromptCache
from heatcompute_node.engines.llm.request import Finished, GenerationRequest, Priority
from heatcompute_node.engines.llm.sampling import SamplingParams
from heatcompute_node.engines.llm.scheduler import Scheduler
from heatcompute_node.engines.llm.tokenizer import Tokenizer

from .conftest import make_scheduler

GREEDY = SamplingParams(temperature=0)


def ask(
    tokenizer: Tokenizer, text: str, max_tokens: int = 12, **kwargs: object
) -> GenerationRequest:
    return GenerationRequest(
        prompt=tuple(tokenizer.tokenize(text)),
        max_tokens=max_tokens,
        sampling=GREEDY,
        ignore_eos=True,
        **kwargs,  # type: ignore[arg-type]
    )


def native_cells(engine: Scheduler) -> dict[int, int]:
    """Cells llama.cpp itself holds per sequence (highest position + 1), not the ledger's."""
    context = engine._runtime.context
    held = {seq: context.seq_pos_max(seq) + 1 for seq in range(engine.config.n_slots)}
    return {seq: n for seq, n in held.items() if n > 0}


def saved_lengths(engine: Scheduler) -> list[int]:
    saved = engine._pool.saved
    assert saved is not None
    return [len(entry.tokens) for entry in saved.entries()]


def holds(engine: Scheduler, request: GenerationRequest) -> bool:
    """Whether a saved entry starts with the request's whole prompt."""
    saved = engine._pool.saved
    assert saved is not None
    n = len(request.prompt)
    return any(entry.tokens[:n] == request.prompt for entry in saved.entries())


# --- the store alone ---------------------------------------------------------------------


def state(nbytes: int) -> npt.NDArray[np.uint8]:
    return np.zeros(nbytes, dtype=np.uint8)


def test_the_store_keeps_its_byte_limit_and_drops_the_least_recently_used() -> None:
    cache = PromptCache(limit_bytes=250)
    assert cache.add((1, 2, 3), state(100))
    assert cache.add((4, 5, 6), state(100))
    entry, n = cache.longest((1, 2, 3, 9), limit=10)
    assert entry is not None
    assert (entry.tokens, n) == ((1, 2, 3), 3)
    assert cache.entries()[-1] is entry  # now the most recently used
    assert cache.add((7, 8), state(100))
    assert [e.tokens for e in cache.entries()] == [(1, 2, 3), (7, 8)]
    assert cache.bytes_used == 200 <= cache.limit_bytes
    assert cache.evicted == 1
    # Larger than the whole limit: not kept, nothing else dropped for it.
    assert not cache.add((9,), state(251))
    assert len(cache) == 2


def test_a_longer_entry_supersedes_the_ones_it_starts_with() -> None:
    cache = PromptCache(limit_bytes=1000)
    cache.add((1, 2), state(10))
    cache.add((1, 3), state(10))
    cache.add((1, 2, 5, 6), state(10))
    assert sorted(e.tokens for e in cache.entries()) == [(1, 2, 5, 6), (1, 3)]
    assert cache.bytes_used == 20
    assert cache.covers((1, 2, 5))
    assert not cache.covers((1, 2, 7))
    assert cache.longest((1, 2, 5, 6, 7), limit=3)[1] == 3
    assert cache.longest((2,), limit=5) == (None, 0)


# --- in the engine -------------------------------------------------------------------------


async def test_no_idle_cells_stay_in_the_kv_cache_after_a_request_ends(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    person = ask(tiny_tokenizer, "a question from a person", max_tokens=30)
    done = await engine.submit(person).result()
    assert done.reason == "length"
    assert engine.stats().kv_cells_used == 0
    assert native_cells(engine) == {}
    # ... and the cells went to RAM: prompt and answer (the last token was never decoded).
    assert saved_lengths(engine) == [len(person.prompt) + done.completion_tokens - 1]
    assert engine.stats().prompt_cache_entries == 1
    assert engine.stats().prompt_cache_bytes > 0

    item = ask(
        tiny_tokenizer, "an item of a batch job", max_tokens=30, priority=Priority.BACKGROUND
    )
    await engine.submit(item).result()
    assert native_cells(engine) == {}
    # A background answer is never continued: only its prompt is kept.
    assert sorted(saved_lengths(engine)) == sorted(
        [len(person.prompt) + done.completion_tokens - 1, len(item.prompt)]
    )

    hits = engine.stats().prompt_cache_hits
    again = await engine.submit(person).result()
    assert again.cached_tokens == len(person.prompt) - 1
    assert engine.stats().prompt_cache_hits == hits + 1
    assert native_cells(engine) == {}


async def test_cells_shared_with_a_running_sequence_stay_for_it(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    system = "Shared system prompt for every turn of the conversation. " * 10
    running = engine.submit(ask(tiny_tokenizer, system + "one", 200))
    async for _ in running:
        break
    short = ask(tiny_tokenizer, system + "two", 4)
    second = await engine.submit(short).result()
    assert second.cached_tokens >= len(tiny_tokenizer.tokenize(system)) - 2
    # The short one left; the running one still holds every cell it had, shared or not.
    (held,) = native_cells(engine).values()
    assert held >= len(tiny_tokenizer.tokenize(system + "one"))
    finished = await running.result()
    assert finished.completion_tokens == 200
    assert native_cells(engine) == {}


async def test_the_ram_bound_holds_and_the_least_recently_used_goes_first(
    tiny_model: Path, tiny_tokenizer: Tokenizer
) -> None:
    prompts = [
        ask(tiny_tokenizer, f"{name} " + "house heating question " * 8, max_tokens=8)
        for name in ("alpha", "bravo", "charlie", "delta")
    ]
    probe = make_scheduler(tiny_model, tiny_tokenizer)
    try:
        await probe.submit(prompts[0]).result()
        entry_bytes = probe.stats().prompt_cache_bytes
    finally:
        probe.stop()
    assert entry_bytes > 0

    limit = int(entry_bytes * 2.5)  # the prompts tokenize alike: two entries fit, not three
    engine = make_scheduler(tiny_model, tiny_tokenizer, prompt_cache_bytes=limit)
    try:
        for prompt in prompts[:3]:
            await engine.submit(prompt).result()
            assert engine.stats().prompt_cache_bytes <= limit
        assert engine.stats().prompt_cache_entries == 2
        # alpha was used least recently: gone; charlie is a hit.
        charlie = await engine.submit(prompts[2]).result()
        assert charlie.cached_tokens == len(prompts[2].prompt) - 1
        alpha = await engine.submit(prompts[0]).result()
        assert alpha.cached_tokens < len(prompts[0].prompt) // 2
        # Saving alpha again dropped bravo (now the least recently used), not charlie.
        assert holds(engine, prompts[0])
        assert not holds(engine, prompts[1])
        assert holds(engine, prompts[2])
        assert engine.stats().prompt_cache_bytes <= limit
    finally:
        engine.stop()


async def test_a_prefix_from_ram_continues_exactly_as_one_kept_in_the_kv_cache(
    smollm2: Path,
) -> None:
    """Greedy SmolLM2: turn 2 of a conversation whose turn 1 was copied back from RAM
    writes the same answer as with turn 1's cells kept in the KV cache, and as with
    nothing cached at all."""
    tokenizer = Tokenizer(smollm2)
    try:
        system = (
            "<|im_start|>system\nYou are the voice assistant of a warm house. You answer "
            "in one short sentence.<|im_end|>\n"
        )
        turn_1 = system + "<|im_start|>user\nWhich rooms have a heater?<|im_end|>\n"
        first = ask(tokenizer, turn_1 + "<|im_start|>assistant\n", max_tokens=24)
        answers: dict[str, Finished] = {}
        said: dict[str, str] = {}
        for name, cache_bytes in (("ram", 64 << 20), ("kv", 0), ("cold", 0)):
            engine = make_scheduler(smollm2, tokenizer, n_ctx=2048, prompt_cache_bytes=cache_bytes)
            try:
                if name != "cold":
                    said[name] = (await engine.submit(first).result()).text
                turn_2 = (
                    f"{turn_1}<|im_start|>assistant\n{said['ram']}<|im_end|>\n"
                    "<|im_start|>user\nAnd which one is the warmest?<|im_end|>\n"
                    "<|im_start|>assistant\n"
                )
                answers[name] = await engine.submit(ask(tokenizer, turn_2, 32)).result()
                if name == "ram":
                    assert engine.stats().prompt_cache_hits == 1
                    assert native_cells(engine) == {}
            finally:
                engine.stop()
        assert said["ram"] == said["kv"]
        assert answers["ram"].cached_tokens == answers["kv"].cached_tokens > 40
        assert answers["cold"].cached_tokens == 0
        assert answers["ram"].text == answers["kv"].text == answers["cold"].text
        assert answers["ram"].text.strip()
    finally:
        tokenizer.close()
