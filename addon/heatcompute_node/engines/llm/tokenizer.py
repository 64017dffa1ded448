"""Text <-> tokens for one model, on its own vocabulary-only handle.

The tokenizer lives apart from the weights and the context: HTTP handlers tokenize on
the event loop while the engine thread decodes, and an engine that reloads its model
after a fault never pulls the vocabulary out from under a handler.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

from .native import LlamaModel


class Tokenizer:
    """A model's vocabulary: tokenize, token pieces, special tokens, chat template."""

    def __init__(self, path: Path) -> None:
        self._model = LlamaModel(path, vocab_only=True)
        vocab = self._model.vocab
        self._vocab = vocab
        self.n_vocab = self._model.n_vocab
        self.bos = int(llama_cpp.llama_vocab_bos(vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self._pieces: dict[int, bytes] = {}
        self._eog = [bool(llama_cpp.llama_vocab_is_eog(vocab, t)) for t in range(self.n_vocab)]
        self.architecture = self._model.meta("general.architecture") or ""
        self.chat_template = self._model.meta("tokenizer.chat_template")
        self.pooling_type = self._model.meta(f"{self.architecture}.pooling_type")
        # A vocabulary-only handle reports 0: the GGUF's metadata still has the value.
        trained = self._model.meta(f"{self.architecture}.context_length") or "0"
        self.n_ctx_train = self._model.n_ctx_train or int(trained)

    @property
    def model(self) -> LlamaModel:
        return self._model

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        """Tokens of `text`; `parse_special` turns written control tokens (<|im_end|>) into ids."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * capacity)()
            n = int(
                llama_cpp.llama_tokenize(
                    self._vocab, data, len(data), buf, capacity, add_special, parse_special
                )
            )
            if n >= 0:
                return list(buf[:n])
            capacity = -n

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (control tokens render as nothing)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = int(llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, False))
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = int(llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False))
        piece = buf.raw[:n]
        self._pieces[token] = piece
        return piece

    def special_text(self, token: int) -> str:
        """A token's text with control tokens spelled out (for templates and stops)."""
        buf = ctypes.create_string_buffer(128)
        n = int(llama_cpp.llama_token_to_piece(self._vocab, token, buf, 128, 0, True))
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """End of generation: EOS, EOT, <|im_end|> and the like."""
        return 0 <= token < self.n_vocab and self._eog[token]

    def close(self) -> None:
        self._model.close()
