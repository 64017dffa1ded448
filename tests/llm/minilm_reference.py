"""all-MiniLM-L6-v2 in plain numpy, straight from the package's safetensors.

An independent reference for the converted GGUF: BERT's own tokenizer (basic
tokenization + WordPiece, as ``BertTokenizer`` with ``do_lower_case``) and the
sentence-transformers pipeline (BERT encoder, mean pooling, L2 normalisation), in
float32 with the exact (erf) GELU of the original. Slow, but a sentence takes
milliseconds at this size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
import unicodedata

import numpy as np
import numpy.typing as npt

from scripts.convert_minilm import read_safetensors

type Array = npt.NDArray[np.floating[Any]]

_erf = np.frompyfunc(math.erf, 1, 1)


class WordPiece:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split, WordPiece."""

    def __init__(self, vocab_file: Path) -> None:
        pieces = vocab_file.read_text(encoding="utf-8").splitlines()
        self.ids = {piece: i for i, piece in enumerate(pieces)}
        self.cls, self.sep, self.unk = self.ids["[CLS]"], self.ids["[SEP]"], self.ids["[UNK]"]

    def encode(self, text: str) -> list[int]:
        out = [self.cls]
        for word in self._words(text):
            out += self._word_pieces(word)
        return [*out, self.sep]

    def _words(self, text: str) -> list[str]:
        cleaned = []
        for char in text:
            if char in "\t\n\r" or unicodedata.category(char) == "Zs":
                cleaned.append(" ")
            elif char in {"\0", "\ufffd"} or unicodedata.category(char) in ("Cc", "Cf"):
                continue
            elif _is_cjk(char):
                cleaned.append(f" {char} ")
            else:
                cleaned.append(char)
        text = unicodedata.normalize("NFD", "".join(cleaned).lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for char in chunk:
                if _is_punctuation(char):
                    words += [current] if current else []
                    words.append(char)
                    current = ""
                else:
                    current += char
            words += [current] if current else []
        return words

    def _word_pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    pieces.append(self.ids[piece])
                    break
                end -= 1
            else:
                return [self.unk]
            start = end
        return pieces


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(
        lo <= code <= hi
        for lo, hi in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F),
            (0x2B820, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


class MiniLM:
    """The sentence embedding of all-MiniLM-L6-v2 for one text at a time."""

    def __init__(self, model_dir: Path) -> None:
        self.tokenizer = WordPiece(model_dir / "vocab.txt")
        self.w: dict[str, Any] = {
            name: np.array(data, dtype=np.float32)
            for name, data in read_safetensors(model_dir / "model.safetensors").items()
            if data.dtype.kind == "f"
        }
        self.n_layer = sum(1 for n in self.w if n.endswith("attention.self.query.weight"))
        self.n_head = 12

    def embed(self, text: str) -> Array:
        ids = self.tokenizer.encode(text)
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w, "embeddings.LayerNorm")
        for i in range(self.n_layer):
            p = f"encoder.layer.{i}."
            x = _layer_norm(x + self._attention(x, p), w, p + "attention.output.LayerNorm")
            h = _linear(x, w, p + "intermediate.dense")
            h = (0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float32))).astype(np.float32)
            x = _layer_norm(x + _linear(h, w, p + "output.dense"), w, p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        unit: Array = (pooled / np.linalg.norm(pooled)).astype(np.float32)
        return unit

    def _attention(self, x: Array, p: str) -> Array:
        n, d = x.shape
        hd = d // self.n_head

        def heads(name: str) -> Array:
            return _linear(x, self.w, p + name).reshape(n, self.n_head, hd).transpose(1, 0, 2)

        q = heads("attention.self.query")
        k = heads("attention.self.key")
        v = heads("attention.self.value")
        scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(hd))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context: Array = (scores @ v).transpose(1, 0, 2).reshape(n, d)
        return _linear(context, self.w, p + "attention.output.dense")


def _linear(x: Array, w: dict[str, Any], name: str) -> Array:
    result: Array = x @ w[name + ".weight"].T + w[name + ".bias"]
    return result


def _layer_norm(x: Array, w: dict[str, Any], name: str, eps: float = 1e-12) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Array = (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]
    return result
