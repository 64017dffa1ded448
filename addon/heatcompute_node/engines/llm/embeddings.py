"""Sentence embeddings: many inputs per decode, one pooled vector per sequence.

An embedding model (BERT-like, with its own pooling) or a decoder model with mean
pooling. Runs on its own worker thread; inputs are packed into batches, one sequence
per input, and the vectors are L2-normalised (cosine similarity = dot product).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import math
from pathlib import Path

from .native import POOLING_MEAN, ContextConfig, LlamaContext, LlamaModel, TokenBatch
from .tokenizer import Tokenizer

POOLING_FROM_MODEL = -1


class InputTooLongError(ValueError):
    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"input {index} has {tokens} tokens; this model embeds at most {limit}")
        self.index = index
        self.tokens = tokens
        self.limit = limit


class EmbeddingEngine:
    """`embed(texts)` -> unit vectors; thread-safe through its single worker."""

    def __init__(
        self, path: Path, tokenizer: Tokenizer, *, n_ctx: int = 2048, n_threads: int = 2
    ) -> None:
        self.tokenizer = tokenizer
        self._model = LlamaModel(path)
        # Encoder models carry their own pooling; decoder models are mean-pooled.
        pooling = POOLING_FROM_MODEL if tokenizer.pooling_type is not None else POOLING_MEAN
        n_ctx = min(n_ctx, self._model.n_ctx_train or n_ctx)
        self._n_seq = 32
        config = ContextConfig(
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_seq_max=self._n_seq,
            n_threads=n_threads,
            embeddings=True,
            pooling=pooling,
        )
        self._context = LlamaContext(self._model, config)
        self._batch = TokenBatch(n_ctx)
        self.limit = n_ctx
        self.dimensions = self._model.n_embd
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-embed")

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Tokens per input; raises `InputTooLongError` for one that doesn't fit."""
        out = []
        for i, text in enumerate(texts):
            tokens = self.tokenizer.tokenize(text, add_special=True, parse_special=False)
            if len(tokens) > self.limit:
                raise InputTooLongError(i, len(tokens), self.limit)
            out.append(tokens or [self.tokenizer.bos])
        return out

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._embed, inputs)

    def _embed(self, inputs: list[list[int]]) -> list[list[float]]:
        vectors: list[list[float]] = []
        start = 0
        while start < len(inputs):
            # Pack as many inputs as fit in one batch (and one sequence slot each).
            end, used = start, 0
            while (
                end < len(inputs)
                and end - start < self._n_seq
                and used + len(inputs[end]) <= self.limit
            ):
                used += len(inputs[end])
                end += 1
            vectors.extend(self._embed_batch(inputs[start:end]))
            start = end
        return vectors

    def _embed_batch(self, inputs: list[list[int]]) -> list[list[float]]:
        self._context.clear()
        self._batch.clear()
        for seq_id, tokens in enumerate(inputs):
            # Pooling reads every token's output: mark them all (llama.cpp would
            # override a partial marking, with a warning per batch).
            for pos, token in enumerate(tokens):
                self._batch.add(token, pos, seq_id, logits=True)
        if self._model.has_encoder and not self._model.has_decoder:
            status = self._context.encode(self._batch)
        else:
            status = self._context.decode(self._batch)
        if status != 0:
            raise RuntimeError(f"embedding batch failed with status {status}")
        return [_normalised(self._context.embeddings_seq(i)) for i in range(len(inputs))]

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self._batch.close()
        self._context.close()
        self._model.close()


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
