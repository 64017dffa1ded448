"""Per-sequence sampling on llama.cpp's sampler chain.

Every sequence gets its own chain (its own seed, penalties history and grammar state),
applied in C to its row of the batch's logits. A grammar is checked lazily, the way
llama.cpp's own server does it: sample without it, and only when the grammar rejects
the token apply it to the whole vocabulary and sample again. Checking one token is
cheap; applying a grammar to 49k candidates every step is not.
"""

from __future__ import annotations

from collections.abc import Mapping
import ctypes
from dataclasses import dataclass, field
import math

import llama_cpp
import numpy as np
import numpy.typing as npt

from .native import LlamaContext, LlamaModel

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


_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class Sampler:
    """One sequence's sampler chain (and grammar); not thread-safe, used by the engine thread."""

    def __init__(self, model: LlamaModel, params: SamplingParams) -> None:
        self._n_vocab = model.n_vocab
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(chain_params)
        self._grammar = None
        add = self._add
        if params.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(params.logit_bias.items()):
                biases[i].token = llama_cpp.llama_token(token)
                biases[i].bias = bias
            add(
                llama_cpp.llama_sampler_init_logit_bias(
                    self._n_vocab, len(params.logit_bias), biases
                )
            )
        if params.repeat_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            add(
                llama_cpp.llama_sampler_init_penalties(
                    self._n_vocab,
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
            seed = DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
            add(llama_cpp.llama_sampler_init_dist(seed))
        if params.grammar is not None:
            grammar = llama_cpp.llama_sampler_init_grammar(
                model.vocab, params.grammar.encode("utf-8"), b"root"
            )
            if not grammar:
                self.close()
                raise GrammarError("the grammar does not parse")
            self._grammar = grammar
            self._candidates = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
            self._ids = np.arange(self._n_vocab, dtype=np.int32)
            self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def _add(self, sampler: object) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, context: LlamaContext, index: int) -> int:
        """Pick (and accept) the next token from row `index` of the last decode's logits."""
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, context.ptr, index))
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(context.ptr, index), shape=(self._n_vocab,)
        )
        token = self._apply(self._chain, logits, None)
        self._one["id"][0] = token
        self._one["logit"][0] = 1.0
        self._apply_to(self._grammar, self._one)
        if not math.isfinite(float(self._one["logit"][0])):
            # Rejected: constrain the whole vocabulary, then sample within it.
            token = self._apply(self._chain, logits, self._grammar)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _apply(self, chain: object, logits: npt.NDArray[np.float32], first: object | None) -> int:
        candidates = self._candidates
        # Samplers sort in place, so ids are restored before every application.
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = self._apply_to(first, candidates) if first is not None else None
        array = self._apply_to(chain, candidates, array)
        return int(candidates["id"][array.selected])

    @staticmethod
    def _apply_to(
        sampler: object,
        data: npt.NDArray[np.void],
        array: llama_cpp.llama_token_data_array | None = None,
    ) -> llama_cpp.llama_token_data_array:
        if array is None:
            array = llama_cpp.llama_token_data_array(
                data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
                size=len(data),
                selected=-1,
                sorted=False,
            )
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return array

    def close(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
