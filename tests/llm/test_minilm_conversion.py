"""scripts/convert_minilm.py: the GGUF llama.cpp makes the same embeddings as the original.

The reference is all-MiniLM-L6-v2 computed in numpy from the package's own safetensors
and vocab.txt (tests/llm/minilm_reference.py), independent of llama.cpp and of the
converter's tensor mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from heatcompute_node.engines.llm.embeddings import EmbeddingEngine
from heatcompute_node.engines.llm.tokenizer import Tokenizer
from scripts.convert_minilm import ConversionError, main, package_model_dir

from .minilm_reference import MiniLM

SENTENCES = [
    "The cat sleeps on the sofa.",
    "Quarterly corporate tax filings are due in April, says the café's naïve accountant.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich!",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return package_model_dir()
    except ConversionError as err:
        pytest.skip(f"{err} (run scripts/setup)")


@pytest.fixture(scope="module")
def converted(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2.gguf"
    assert main(["--model-dir", str(model_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def engine(converted: Path) -> Iterator[EmbeddingEngine]:
    tokenizer = Tokenizer(converted)
    engine = EmbeddingEngine(converted, tokenizer, n_ctx=512, n_threads=2)
    yield engine
    engine.close()
    tokenizer.close()


def test_the_gguf_is_a_mean_pooled_f16_bert(engine: EmbeddingEngine, converted: Path) -> None:
    meta = engine.tokenizer.model.meta
    assert meta("general.architecture") == "bert"
    assert meta("bert.pooling_type") == str(int(gguf.PoolingType.MEAN))
    assert meta("bert.attention.causal") == "false"
    assert meta("general.file_type") == str(int(gguf.LlamaFileType.MOSTLY_F16))
    assert meta("tokenizer.ggml.model") == "bert"
    assert engine.tokenizer.n_vocab == 30522
    assert (engine.dimensions, engine.limit) == (384, 512)
    # F16 matrices: half the 91 MB of F32 safetensors (vectors and position table stay F32).
    assert 40e6 < converted.stat().st_size < 50e6


async def test_llama_cpp_embeds_like_the_numpy_reference(
    engine: EmbeddingEngine, model_dir: Path
) -> None:
    reference = MiniLM(model_dir)
    tokens = engine.tokenize(SENTENCES)
    assert tokens == [reference.tokenizer.encode(s) for s in SENTENCES]

    ours = np.array(await engine.embed(tokens))
    theirs = np.array([reference.embed(s) for s in SENTENCES])
    cosines = (ours * theirs).sum(axis=1)  # both are unit vectors
    assert ours.shape == (3, 384)
    # Measured 0.999999 (F16 weights); a wrong mapping or normalisation lands far below.
    assert cosines.min() >= 0.999, cosines


def test_a_directory_without_bert_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert main(["--model-dir", str(tmp_path), "--out", str(tmp_path / "x.gguf")]) == 1
    assert not (tmp_path / "x.gguf").exists()
