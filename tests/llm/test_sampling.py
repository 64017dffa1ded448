"""The numpy fast path against llama.cpp's sampler chain: same candidates, same odds.

The chain's candidates are what its filters leave in a token-data array
(llama_sampler_apply), with the probabilities its dist sampler computes over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
import math
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt
import pytest

from heatcompute_node.engines.llm import scheduler as scheduler_module
from heatcompute_node.engines.llm.native import ContextConfig
from heatcompute_node.engines.llm.numpy_sampler import (
    BLOCK,
    NumpySampler,
    _find,
    _running_sums,
)
from heatcompute_node.engines.llm.request import GenerationRequest
from heatcompute_node.engines.llm.runtime import Runtime
from heatcompute_node.engines.llm.sampling import (
    TOKEN_DATA,
    Sampler,
    SamplingParams,
    apply_sampler,
    sampler_chain,
)
from heatcompute_node.engines.llm.scheduler import Scheduler
from heatcompute_node.engines.llm.tokenizer import Tokenizer

from .conftest import make_scheduler

type Logits = npt.NDArray[np.float32]


def _vectors() -> dict[str, tuple[Logits, bool]]:
    """Logits rows by name, and whether they have ties (where llama.cpp's pick is free)."""
    rng = np.random.default_rng(20261125)
    dominant = np.zeros(49152, dtype=np.float32)
    dominant[31337] = 30.0
    levels = np.repeat(np.arange(100) / 4, 50).astype(np.float32)  # 50 tokens per value
    return {
        "random 49k": ((rng.standard_normal(49152) * 3).astype(np.float32), False),
        "random 300": ((rng.standard_normal(300) * 2).astype(np.float32), False),
        "peaked 32k": ((rng.gumbel(size=32064) * 2.5).astype(np.float32), False),
        "flat 49k": (np.zeros(49152, dtype=np.float32), True),
        "flat 800": (np.full(800, 3.5, dtype=np.float32), True),
        "one dominant": (dominant, True),
        "tied levels": (levels[rng.permutation(levels.size)], True),
    }


VECTORS = _vectors()
BIAS = {3: 5.0, 7: -100.0, 11: 100.0, -1: 50.0, 10**9: 50.0}  # the last two: not tokens
PARAMS = {
    "temperature 0.7": SamplingParams(temperature=0.7),
    "temperature 1.5": SamplingParams(temperature=1.5),
    "top_k 40": SamplingParams(top_k=40),
    "top_k 1": SamplingParams(temperature=0.7, top_k=1),
    "top_k beyond the vocabulary": SamplingParams(top_k=10**6, top_p=0.8),
    "top_p 0.9": SamplingParams(temperature=0.7, top_p=0.9),
    "top_p 0.5": SamplingParams(top_p=0.5),
    "top_p 0": SamplingParams(top_p=0.0),
    "min_p 0.05": SamplingParams(temperature=0.7, min_p=0.05),
    "min_p 1": SamplingParams(min_p=1.0),
    "top_k 1000 then top_p 0.95": SamplingParams(top_k=1000, top_p=0.95),
    "all filters": SamplingParams(top_k=40, top_p=0.9, min_p=0.05),
    "logit bias": SamplingParams(temperature=0.7, top_p=0.9, min_p=0.05, logit_bias=BIAS),
    "logit bias, no filter": SamplingParams(temperature=0.8, logit_bias=BIAS),
}


def biased(logits: Logits, params: SamplingParams) -> Logits:
    row = logits.copy()
    for token, bias in params.logit_bias.items():
        if 0 <= token < row.size:
            row[token] += np.float32(bias)
    return row


def chain_candidates(
    logits: Logits, params: SamplingParams
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], int]:
    """What llama.cpp's chain leaves: candidate ids, their probabilities, its pick."""
    chain = sampler_chain(logits.size, params, seed=1)
    try:
        data = np.zeros(logits.size, dtype=TOKEN_DATA)
        data["id"] = np.arange(logits.size)
        data["logit"] = logits
        array = apply_sampler(chain, data)
    finally:
        llama_cpp.llama_sampler_free(chain)
    left = data[: array.size]
    return left["id"].copy(), left["p"].copy(), int(data["id"][array.selected])


def numpy_sampler(logits: Logits, params: SamplingParams, seed: int = 0) -> NumpySampler:
    return NumpySampler(logits.size, params, np.random.default_rng(seed))


@pytest.mark.parametrize("vector", VECTORS)
@pytest.mark.parametrize("name", PARAMS)
def test_the_fast_path_keeps_the_chains_candidates_with_its_probabilities(
    vector: str, name: str
) -> None:
    logits, has_ties = VECTORS[vector]
    params = PARAMS[name]
    chain_ids, chain_p, _ = chain_candidates(logits, params)
    distribution = numpy_sampler(logits, params).distribution(logits)
    assert distribution is not None
    fast_ids, fast_p = distribution

    chain_set, fast_set = {int(t) for t in chain_ids}, {int(t) for t in fast_ids}
    if chain_set != fast_set:
        # Only what llama.cpp leaves to its sort may differ: which of the tokens tied
        # at the cut (top_k's k-th place, top_p's last) stay. The fast path keeps the
        # lowest ids.
        assert has_ties, f"{len(chain_set ^ fast_set)} tokens differ without a tie"
        row = biased(logits, params)
        cut = row[chain_ids].min()
        assert len(chain_set) == len(fast_set)
        assert row[fast_ids].min() == cut
        assert all(row[token] == cut for token in chain_set ^ fast_set)
        tied = np.flatnonzero(row == cut)
        kept = sorted(t for t in fast_set if row[t] == cut)
        assert kept == tied[: len(kept)].tolist()
    np.testing.assert_allclose(np.sort(fast_p), np.sort(chain_p), rtol=0, atol=1e-5)
    chain_of = {int(t): float(p) for t, p in zip(chain_ids, chain_p, strict=True)}
    for token, p in zip(fast_ids, fast_p, strict=True):
        if int(token) in chain_of:
            assert float(p) == pytest.approx(chain_of[int(token)], abs=1e-5)


def test_a_flat_top_p_cuts_where_the_chains_float32_sum_does() -> None:
    # Exact arithmetic keeps ceil(0.9 * 49152) = 44237 tokens; float32 running sums
    # of 1/49152 drift, and the chain keeps what its sum says.
    logits = np.zeros(49152, dtype=np.float32)
    params = SamplingParams(top_p=0.9)
    chain_ids, _, _ = chain_candidates(logits, params)
    distribution = numpy_sampler(logits, params).distribution(logits)
    assert distribution is not None
    assert len(distribution[0]) == len(chain_ids) != 44237


@pytest.mark.parametrize(
    "logits",
    [
        [1.0, 5.0, 5.0, 2.0],
        [9.0, 9.0, 9.0],
        [-math.inf, -3.0, -3.0, -math.inf],
        [0.0, 2.0, 7.0, 7.0, -1.0, 7.0],
    ],
)
@pytest.mark.parametrize("bias", [{}, {0: 4.0}, {3: 5.0, 2: -1.0}])
def test_greedy_is_the_first_highest_logit_like_the_chain(
    logits: list[float], bias: dict[int, float]
) -> None:
    row = np.array(logits, dtype=np.float32)
    params = SamplingParams(temperature=0, logit_bias=bias)
    _, _, chain_pick = chain_candidates(row, params)
    token = numpy_sampler(row, params).sample(row)
    assert token == chain_pick == int(np.argmax(biased(row, params)))


def test_greedy_over_a_random_row_and_a_tiny_temperature() -> None:
    row, _ = VECTORS["random 49k"]
    greedy = SamplingParams(temperature=0)
    _, _, chain_pick = chain_candidates(row, greedy)
    assert numpy_sampler(row, greedy).sample(row) == chain_pick == int(row.argmax())
    # A temperature that is 0 as the chain's float: the chain keeps the top token only.
    tiny = SamplingParams(temperature=1e-50)
    _, _, chain_pick = chain_candidates(row, tiny)
    assert numpy_sampler(row, tiny).sample(row) == chain_pick


def _tail_heavy() -> Logits:
    # 4 likely tokens and 60 that lie below the head (ln(8 * 64) = 6.2 under the top at
    # temperature 1): together ~1.4 % of the draws, taken by the rejection step.
    row = np.full(64, -7.0, dtype=np.float32)
    row[[5, 17, 40, 63]] = [0.0, -0.5, -1.0, -6.0]
    return row


def _wide() -> Logits:
    # Thousands of tokens near the top (draws go block by block), some that weigh 0.
    row = (np.random.default_rng(4).standard_normal(3000) * 0.5).astype(np.float32)
    row[255::256] = -math.inf  # a block's last token
    return row


@pytest.mark.parametrize(
    ("logits", "params", "draws"),
    [
        (_tail_heavy(), SamplingParams(temperature=1.0), 40_000),
        (_tail_heavy(), SamplingParams(temperature=0.5, logit_bias={9: 6.0}), 20_000),
        (_tail_heavy(), SamplingParams(top_k=10, min_p=0.001), 20_000),
        (VECTORS["random 300"][0], SamplingParams(temperature=1.5, top_p=0.95), 20_000),
        (_wide(), SamplingParams(temperature=1.0), 30_000),
        (_wide(), SamplingParams(top_k=2000, logit_bias={0: -math.inf}), 30_000),
    ],
    ids=["whole vocabulary", "biased", "filtered", "top_p", "wide", "wide filtered"],
)
def test_draws_follow_the_distribution(logits: Logits, params: SamplingParams, draws: int) -> None:
    sampler = numpy_sampler(logits, params, seed=3)
    distribution = sampler.distribution(logits)
    assert distribution is not None
    ids, probs = distribution
    tokens = [sampler.sample(logits) for _ in range(draws)]
    assert None not in tokens
    counts = np.bincount(np.array(tokens), minlength=logits.size)
    never = np.ones(logits.size, dtype=bool)
    never[ids[probs > 0]] = False
    assert counts[never].sum() == 0
    expected = probs * draws
    sigma = np.sqrt(expected * np.clip(1 - probs, 0, 1))
    assert np.all(np.abs(counts[ids] - expected) <= 5 * sigma + 3)
    # By blocks of 256 ids too, where a token-by-token check is too loose.
    per_token = np.zeros(logits.size)
    per_token[ids] = probs
    blocks = np.arange(0, logits.size, 256)
    block_p = np.add.reduceat(per_token, blocks)
    block_counts = np.add.reduceat(counts, blocks)
    block_sigma = np.sqrt(block_p * draws * np.clip(1 - block_p, 0, 1))
    assert np.all(np.abs(block_counts - block_p * draws) <= 5 * block_sigma + 3)


def test_a_draw_past_a_blocks_own_sum_lands_on_its_last_token_that_weighs() -> None:
    # Block sums and a block's running sums are added in different orders, so they may
    # round apart; a draw between the two must not fall on a token of weight 0.
    weights = np.ones(4 * BLOCK + 1, dtype=np.float32)
    weights[BLOCK - 3 : BLOCK] = 0.0
    sums = _running_sums(weights)
    assert sums.size == 5
    sums[0] += 0.5  # as if the block sum came out higher than its running sum
    assert _find(weights, sums, float(sums[0]) - 0.25) == BLOCK - 4
    assert _find(weights, sums, float(sums[-1])) == weights.size - 1  # r may round to the total


def test_the_tail_is_drawn_as_often_as_it_weighs() -> None:
    logits = _tail_heavy()
    params = SamplingParams(temperature=1.0)
    sampler = numpy_sampler(logits, params, seed=11)
    distribution = sampler.distribution(logits)
    assert distribution is not None
    ids, probs = distribution
    draws = 60_000
    tokens = [sampler.sample(logits) for _ in range(draws)]
    got = sum(t is not None and logits[t] == -7.0 for t in tokens)
    expected = probs[logits[ids] == -7.0].sum() * draws
    assert abs(got - expected) <= 5 * math.sqrt(expected)


def test_the_same_seed_draws_the_same_tokens() -> None:
    logits, _ = VECTORS["random 49k"]
    params = SamplingParams(temperature=1.0, top_p=0.95)

    def draws(seed: int) -> list[int | None]:
        sampler = numpy_sampler(logits, params, seed)
        return [sampler.sample(logits) for _ in range(50)]

    assert draws(5) == draws(5) != draws(6)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_logits_are_left_to_the_chain(bad: float) -> None:
    row = np.zeros(100, dtype=np.float32)
    row[42] = bad
    for params in (SamplingParams(), SamplingParams(temperature=0, logit_bias={1: 2.0})):
        if params.temperature == 0 and bad == math.inf:
            continue  # the first +inf is a fine argmax
        assert numpy_sampler(row, params).sample(row) is None
        assert numpy_sampler(row, params).distribution(row) is None


# --- through the engine, on the tiny model -----------------------------------------------


@pytest.fixture
def runtime(tiny_model: Path) -> Iterator[Runtime]:
    runtime = Runtime.load(tiny_model, ContextConfig(n_ctx=64, n_batch=16, n_seq_max=1))
    yield runtime
    runtime.close()


def _decode(runtime: Runtime, tokens: list[int]) -> int:
    runtime.batch.clear()
    index = runtime.batch.add_span(tokens, 0, 0, logits_last=True)
    assert runtime.context.decode(runtime.batch) == 0
    return index


@pytest.mark.parametrize(
    ("bad", "params"),
    [
        (math.inf, SamplingParams(temperature=0.7, seed=3)),
        (math.nan, SamplingParams(temperature=0)),
    ],
)
def test_a_row_the_fast_path_refuses_gets_the_chains_token(
    runtime: Runtime, tiny_tokenizer: Tokenizer, bad: float, params: SamplingParams
) -> None:
    index = _decode(runtime, tiny_tokenizer.tokenize("hello"))
    n_vocab = runtime.model.n_vocab
    row = np.ctypeslib.as_array(
        llama_cpp.llama_get_logits_ith(runtime.context.ptr, index), shape=(n_vocab,)
    )
    row[7] = bad
    fast = Sampler(runtime.model, params)
    chain = Sampler(runtime.model, params, fast_path=False)
    try:
        assert fast.sample(runtime.context, index) == chain.sample(runtime.context, index)
    finally:
        fast.close()
        chain.close()


def _request(tokenizer: Tokenizer, sampling: SamplingParams) -> GenerationRequest:
    return GenerationRequest(
        prompt=tuple(tokenizer.tokenize("hello world")),
        max_tokens=24,
        ignore_eos=True,
        sampling=sampling,
    )


async def test_the_same_seed_writes_the_same_text_and_another_seed_another(
    engine: Scheduler, tiny_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chain(*_: object) -> int:
        raise AssertionError("the chain sampled: the fast path should have")

    monkeypatch.setattr(llama_cpp, "llama_sampler_sample", no_chain)
    texts = []
    for seed in (7, 7, 8):
        params = SamplingParams(temperature=1.0, seed=seed)
        result = await engine.submit(_request(tiny_tokenizer, params)).result()
        assert result.reason == "length"
        texts.append(result.text)
    assert texts[0] == texts[1] != texts[2]


async def test_unseeded_requests_write_different_texts(
    engine: Scheduler, tiny_tokenizer: Tokenizer
) -> None:
    handles = [
        engine.submit(_request(tiny_tokenizer, SamplingParams(temperature=1.0))) for _ in range(2)
    ]
    first, second = await asyncio.gather(*(h.result() for h in handles))
    assert first.text != second.text


async def test_greedy_text_is_the_chains(
    tiny_model: Path, tiny_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = []
    for fast_path in (True, False):
        monkeypatch.setattr(scheduler_module, "Sampler", partial(Sampler, fast_path=fast_path))
        engine = make_scheduler(tiny_model, tiny_tokenizer)
        try:
            params = SamplingParams(temperature=0, logit_bias={29871: -3.0})
            texts.append((await engine.submit(_request(tiny_tokenizer, params)).result()).text)
        finally:
            engine.stop()
    assert texts[0] == texts[1]


@pytest.mark.parametrize(
    ("params", "fast"),
    [
        (SamplingParams(temperature=0.7, top_k=0, top_p=0.9), True),
        (SamplingParams(temperature=0.7, top_k=40), False),  # the chain is faster there
        (SamplingParams(temperature=0, top_k=40), True),  # greedy ignores top_k
        (SamplingParams(temperature=0.7, top_k=0, repeat_penalty=1.1), False),
    ],
)
def test_the_fast_path_is_taken_where_it_is_faster(
    runtime: Runtime, params: SamplingParams, fast: bool
) -> None:
    sampler = Sampler(runtime.model, params)
    try:
        assert (sampler._fast is not None) is fast
    finally:
        sampler.close()
