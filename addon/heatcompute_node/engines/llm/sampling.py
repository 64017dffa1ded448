"""Per-sequence sampling: llama.cpp's sampler chain, or its numpy fast path.

Every sequence gets its own chain (its own seed, penalties history and grammar state).
Without a grammar or penalties, the chain's filters are done in numpy on the logits row
in place (numpy_sampler.py: the same tokens and probabilities, ~5x cheaper per token);
everything else runs the chain in C on the sequence's row of the batch's logits.

A grammar is checked lazily, the way llama.cpp's own server does it: sample without it,
and only when the grammar rejects the token apply it to the whole vocabulary and sample
again. Checking one token is cheap; applying a grammar to 49k candidates every step is
not.
"""

from __future__ import annotations

from collections.abc import Mapping
import ctypes
from dataclasses import dataclass, field
import math
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from .native import LlamaContext, LlamaModel, NativeError
from .numpy_sampler import NumpySampler

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp: pick a random seed


class GrammarError(ValueError):
    """The grammar does not parse."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingParams:
    """What one request asks of the sampler; OpenAI's defaults where it has them."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    grammar: str | None = None
    """GBNF with a ``root`` rule; the output must match it."""
    logit_bias: Mapping[int, float] = field(default_factory=dict)

    @property
    def penalties(self) -> bool:
        return bool(self.repeat_penalty != 1.0 or self.frequency_penalty or self.presence_penalty)


TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def sampler_chain(n_vocab: int, params: SamplingParams, seed: int = DEFAULT_SEED) -> Any:
    """llama.cpp's chain for `params`, grammar aside; the caller frees it.

    Logit bias, penalties, then greedy, or top_k, top_p, min_p, temperature and dist:
    the order the numpy fast path follows.
    """
    chain_params = llama_cpp.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(chain_params)

    def add(sampler: object) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    # llama.cpp indexes the logits by these ids: one outside the vocabulary would write
    # past the row. Ignored, as the numpy fast path ignores it.
    in_vocab = {t: b for t, b in params.logit_bias.items() if 0 <= t < n_vocab}
    if in_vocab:
        biases = (llama_cpp.llama_logit_bias * len(in_vocab))()
        for i, (token, bias) in enumerate(in_vocab.items()):
            biases[i].token = llama_cpp.llama_token(token)
            biases[i].bias = bias
        add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(in_vocab), biases))
    if params.penalties:
        add(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                params.repeat_last_n,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
        )
    if params.temperature <= 0:
        add(llama_cpp.llama_sampler_init_greedy())
    else:
        if params.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(params.temperature))
        add(llama_cpp.llama_sampler_init_dist(seed))
    return chain


def apply_sampler(
    sampler: object,
    data: npt.NDArray[np.void],
    array: llama_cpp.llama_token_data_array | None = None,
) -> llama_cpp.llama_token_data_array:
    """Run a sampler over token records (TOKEN_DATA) in place; returns the array header.

    Its first `size` records are the candidates left, `selected` the pick if any.
    """
    if array is None:
        array = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=len(data),
            selected=-1,
            sorted=False,
        )
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    return array


class Sampler:
    """One sequence's sampler chain (and grammar); not thread-safe, used by the engine thread.

    `fast_path=False` keeps every token in the chain (benchmarks and tests compare).
    """

    def __init__(
        self, model: LlamaModel, params: SamplingParams, *, fast_path: bool = True
    ) -> None:
        self._n_vocab = model.n_vocab
        seed = DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        self._fast: NumpySampler | None = None
        # With top_k the chain is faster (its partial sort leaves k tokens for the rest;
        # bench/sampling.py: 52-75 against 86-116 µs), so those requests keep it.
        top_k_applies = params.top_k > 0 and params.temperature > 0
        if fast_path and params.grammar is None and not params.penalties and not top_k_applies:
            # Its own generator: the same seed, the same text (not the chain's stream).
            rng = np.random.default_rng(None if seed == DEFAULT_SEED else seed)
            self._fast = NumpySampler(self._n_vocab, params, rng)
        self._chain = sampler_chain(self._n_vocab, params, seed)
        self._grammar = None
        if params.grammar is not None:
            grammar = llama_cpp.llama_sampler_init_grammar(
                model.vocab, params.grammar.encode("utf-8"), b"root"
            )
            if not grammar:
                self.close()
                raise GrammarError("the grammar does not parse")
            self._grammar = grammar
            self._candidates = np.zeros(self._n_vocab, dtype=TOKEN_DATA)
            self._ids = np.arange(self._n_vocab, dtype=np.int32)
            self._one = np.zeros(1, dtype=TOKEN_DATA)

    def sample(self, context: LlamaContext, index: int) -> int:
        """Pick (and accept) the next token from row `index` of the last decode's logits."""
        if self._fast is not None:
            token = self._fast.sample(self._logits(context, index))
            if token is not None:
                return token  # nothing in a chain without grammar or penalties keeps state
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, context.ptr, index))
        logits = self._logits(context, index)
        token = self._apply(self._chain, logits, None)
        self._one["id"][0] = token
        self._one["logit"][0] = 1.0
        apply_sampler(self._grammar, self._one)
        if not math.isfinite(float(self._one["logit"][0])):
            # Rejected: constrain the whole vocabulary, then sample within it.
            token = self._apply(self._chain, logits, self._grammar)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _logits(self, context: LlamaContext, index: int) -> npt.NDArray[np.float32]:
        """Row `index` of the last decode's logits, read where llama.cpp keeps it."""
        pointer = llama_cpp.llama_get_logits_ith(context.ptr, index)
        if not pointer:
            raise NativeError(f"the last decode has no logits for batch index {index}")
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _apply(self, chain: object, logits: npt.NDArray[np.float32], first: object | None) -> int:
        candidates = self._candidates
        # Samplers sort in place, so ids are restored before every application.
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = apply_sampler(first, candidates) if first is not None else None
        array = apply_sampler(chain, candidates, array)
        return int(candidates["id"][array.selected])

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
