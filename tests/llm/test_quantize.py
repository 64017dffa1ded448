"""Re-quantising a model for batched CPU serving (`engines/llm/quantize.py`)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from heatcompute_node.engines.llm.native import LlamaModel
from heatcompute_node.engines.llm.quantize import QuantizeError, main, requantize


def _weight_types(path: Path) -> set[str]:
    reader = gguf.GGUFReader(path)
    return {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}


def test_requantize_writes_a_loadable_q8_0_model(tiny_model: Path, tmp_path: Path) -> None:
    target = requantize(tiny_model, tmp_path / "out" / "tiny.Q8_0.gguf", "q8_0", threads=1)

    assert target == tmp_path / "out" / "tiny.Q8_0.gguf"
    assert "Q8_0" in _weight_types(target)
    assert not (tmp_path / "out" / "tiny.Q8_0.gguf.part").exists()
    model = LlamaModel(target)
    try:
        assert model.n_vocab == LlamaModel(tiny_model, vocab_only=True).n_vocab
    finally:
        model.close()


def test_an_unknown_format_or_a_missing_source_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="unknown format 'q3'"):
        requantize(tiny_model, tmp_path / "x.gguf", "q3")
    with pytest.raises(QuantizeError, match="is not a file"):
        requantize(tmp_path / "missing.gguf", tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_file_llama_cpp_cannot_read_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)

    assert main([str(broken), str(tmp_path / "out.gguf"), "--threads", "1"]) == 1

    assert "could not convert" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.gguf"]


def test_the_command_line_prints_the_converted_file(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "tiny.F16.gguf"

    assert main([str(tiny_model), str(target), "--type", "f16", "--threads", "1"]) == 0

    assert capsys.readouterr().out.strip() == str(target)
    assert "F16" in _weight_types(target)
