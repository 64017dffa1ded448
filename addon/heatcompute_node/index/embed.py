"""Passages to vectors on the node's embedding model (the one /v1/embeddings serves).

The index hands many passages per call; the engine packs them into llama.cpp batches on
its own worker thread. Vectors come back L2-normalised, so cosine similarity is a dot
product. A passage longer than the model's context is cut (its head carries its topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..engines.llm.embeddings import EmbeddingEngine
from ..engines.llm.models import (
    ModelLoadFailedError,
    ModelLoadingError,
    ModelManager,
    ModelNotFoundError,
)

type Vectors = npt.NDArray[np.float32]
"""(n, dimensions), one unit row per text."""


class IndexUnavailableError(RuntimeError):
    """No embedding model can be used now (none on the node, or it fails to load)."""


class Embedder(Protocol):
    @property
    def model_name(self) -> str | None:
        """The model's id (None: none found); a new model means a new index."""
        ...

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


class LlmEmbedder:
    """The node's embedding model through its model manager (loaded on first use)."""

    def __init__(self, manager: ModelManager, model_id: str | None = None) -> None:
        self.manager = manager
        self.model_id = model_id

    @property
    def model_name(self) -> str | None:
        try:
            return self.manager.find(self.model_id, "embedding").id
        except ModelNotFoundError:
            return None

    async def embed(self, texts: Sequence[str]) -> Vectors:
        try:
            engine = await self.manager.embeddings(self.model_id)
        except (ModelNotFoundError, ModelLoadFailedError, ModelLoadingError) as err:
            raise IndexUnavailableError(str(err)) from err
        tokens = await asyncio.to_thread(_tokens, engine, texts)
        vectors = await engine.embed(tokens)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), engine.dimensions)


def _tokens(engine: EmbeddingEngine, texts: Sequence[str]) -> list[list[int]]:
    out = []
    for text in texts:
        tokens = engine.tokenizer.tokenize(text, add_special=True, parse_special=False)
        if len(tokens) > engine.limit:
            tokens = [*tokens[: engine.limit - 1], tokens[-1]]  # keep the closing [SEP]
        out.append(tokens or [engine.tokenizer.bos])
    return out
