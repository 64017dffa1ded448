"""What the split plan needs to know about a GGUF file: its layers and its size."""

from __future__ import annotations

from pathlib import Path

from ..engines.llm.native import LlamaModel
from .lead import SplitModel


def read_split_model(model_id: str, path: Path) -> SplitModel:
    """Reads the vocabulary and metadata only (fast); raises ValueError if the file does
    not say how many layers it has."""
    model = LlamaModel(path, vocab_only=True)
    try:
        arch = model.meta("general.architecture")
        blocks = model.meta(f"{arch}.block_count") if arch else None
    finally:
        model.close()
    if blocks is None or not blocks.isdigit() or int(blocks) < 2:
        raise ValueError(f"{path.name} does not say how many layers it has")
    return SplitModel(id=model_id, path=path, n_layer=int(blocks), size_bytes=path.stat().st_size)
