"""Thin, typed wrappers over llama-cpp-python's low-level (ctypes) API.

Only this module touches `llama_cpp` pointers. ctypes releases the GIL for the length
of every foreign call, so a decode in the engine thread never blocks the event loop.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
import logging
from pathlib import Path
import threading
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from .offload import ModelPlacement, Offload

_LOGGER = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False

# ggml's log levels (WARN = 3, ERROR = 4); everything else is load-time chatter.
_LEVELS = {3: logging.WARNING, 4: logging.ERROR}

POOLING_NONE = 0
POOLING_MEAN = 1


class NativeError(RuntimeError):
    """llama.cpp refused to load a model or create a context."""


def ensure_backend() -> None:
    """Initialise llama.cpp once per process and route its log lines to `logging`."""
    global _backend_ready  # noqa: PLW0603 - process-wide, like the library's own state
    with _backend_lock:
        if _backend_ready:
            return
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        _backend_ready = True


@llama_cpp.llama_log_callback  # type: ignore[misc]
def _log_callback(level: int, text: bytes, _user_data: Any) -> None:
    # llama.cpp is chatty at load time; its INFO lines are DEBUG for the node.
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        _LOGGER.log(_LEVELS.get(level, logging.DEBUG), "%s", message)


class LlamaModel:
    """A loaded GGUF model (weights, or only the vocabulary with ``vocab_only``)."""

    def __init__(
        self,
        path: Path,
        *,
        vocab_only: bool = False,
        n_gpu_layers: int = 0,
        offload: Offload | None = None,
    ) -> None:
        ensure_backend()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = vocab_only
        params.n_gpu_layers = n_gpu_layers
        placement = ModelPlacement(offload) if offload is not None else None
        if placement is not None:
            placement.apply(params)
        self.path = path
        self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise NativeError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self.ptr))
        self.n_embd = int(llama_cpp.llama_model_n_embd(self.ptr))
        self.has_encoder = bool(llama_cpp.llama_model_has_encoder(self.ptr))
        self.has_decoder = bool(llama_cpp.llama_model_has_decoder(self.ptr))

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None when the key is absent."""
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size))
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextConfig:
    """How a context is shaped; the engine's capacity follows from it."""

    n_ctx: int = 8192
    n_batch: int = 512
    n_seq_max: int = 16
    n_threads: int = 2
    embeddings: bool = False
    pooling: int = POOLING_NONE
    offload: Offload | None = None
    """Layers on other machines (llama.cpp's RPC backend; offload.py)."""


class LlamaContext:
    """One llama.cpp context: one KV cache shared (unified) by many sequences."""

    def __init__(self, model: LlamaModel, config: ContextConfig) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = config.n_ctx
        params.n_batch = config.n_batch
        params.n_ubatch = config.n_batch
        params.n_seq_max = config.n_seq_max
        params.n_threads = config.n_threads
        params.n_threads_batch = config.n_threads
        params.no_perf = True
        # Unified: every sequence may use the whole context, and copying a prefix from
        # one sequence to another only tags cells (no data copy): the prefix cache.
        params.kv_unified = True
        params.embeddings = config.embeddings
        if config.embeddings:
            params.pooling_type = config.pooling
        self.model = model
        self.config = config
        self.ptr = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise NativeError(f"llama.cpp could not create a context for {model.path}")
        self.memory = llama_cpp.llama_get_memory(self.ptr)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ptr))
        self._threads = config.n_threads

    def decode(self, batch: TokenBatch) -> int:
        """Run the batch; 0 = ok, 1 = no room in the KV cache, other = failure."""
        return int(llama_cpp.llama_decode(self.ptr, batch.raw))

    def encode(self, batch: TokenBatch) -> int:
        return int(llama_cpp.llama_encode(self.ptr, batch.raw))

    def set_threads(self, n_threads: int) -> None:
        if n_threads != self._threads:
            llama_cpp.llama_set_n_threads(self.ptr, n_threads, n_threads)
            self._threads = n_threads

    def seq_rm(self, seq_id: int, p0: int = 0, p1: int = -1) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, seq_id, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        llama_cpp.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def seq_pos_max(self, seq_id: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self.memory, seq_id))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)

    def seq_state_size(self, seq_id: int) -> int:
        return int(llama_cpp.llama_state_seq_get_size(self.ptr, seq_id))

    def seq_state(self, seq_id: int) -> npt.NDArray[np.uint8]:
        """A copy of the sequence's KV cells (positions, keys, values) in host memory."""
        size = self.seq_state_size(seq_id)
        # np.empty, not a ctypes array: no zeroing pass over memory about to be written.
        state = np.empty(size, dtype=np.uint8)
        written = int(llama_cpp.llama_state_seq_get_data(self.ptr, _u8(state), size, seq_id))
        if written != size:
            raise NativeError(f"llama.cpp saved {written} of {size} bytes of sequence {seq_id}")
        return state

    def set_seq_state(self, seq_id: int, state: npt.NDArray[np.uint8]) -> bool:
        """Put saved cells back as `seq_id` (its own cells are dropped first); False if
        the cache has no room for them (then the sequence is left empty)."""
        read = int(llama_cpp.llama_state_seq_set_data(self.ptr, _u8(state), state.nbytes, seq_id))
        return read > 0

    def embeddings_seq(self, seq_id: int) -> list[float]:
        ptr = llama_cpp.llama_get_embeddings_seq(self.ptr, seq_id)
        if not ptr:
            raise NativeError("the context has no pooled embedding for this sequence")
        return [float(x) for x in ptr[: self.model.n_embd]]

    def embeddings_ith(self, index: int) -> list[float]:
        ptr = llama_cpp.llama_get_embeddings_ith(self.ptr, index)
        if not ptr:
            raise NativeError("the context has no embedding for this token")
        return [float(x) for x in ptr[: self.model.n_embd]]

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_free(self.ptr)
            self.ptr = None


def _u8(array: npt.NDArray[np.uint8]) -> Any:
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))


class TokenBatch:
    """A reusable llama_batch: tokens of many sequences for one decode call."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.raw = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.n_tokens = 0
        self._token = self.raw.token
        self._pos = self.raw.pos
        self._n_seq = self.raw.n_seq_id
        self._seq = self.raw.seq_id
        self._logits = self.raw.logits

    def clear(self) -> None:
        self.n_tokens = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq_id: int, *, logits: bool) -> int:
        """Append one token; returns its index in the batch (the logits row when wanted)."""
        i = self.n_tokens
        if i >= self.capacity:
            raise IndexError("batch is full")
        self._token[i] = token
        self._pos[i] = pos
        self._n_seq[i] = 1
        self._seq[i][0] = seq_id
        self._logits[i] = logits
        self.n_tokens = i + 1
        self.raw.n_tokens = self.n_tokens
        return i

    def add_span(self, tokens: list[int], start_pos: int, seq_id: int, *, logits_last: bool) -> int:
        """Append consecutive tokens of one sequence; returns the index of the last one."""
        last = -1
        for offset, token in enumerate(tokens):
            last = self.add(
                token, start_pos + offset, seq_id, logits=logits_last and offset == len(tokens) - 1
            )
        return last

    def close(self) -> None:
        if self.raw is not None:
            llama_cpp.llama_batch_free(self.raw)
            self.raw = None
