"""Tiny random-weight llama GGUFs for fast engine tests.

The vocabulary (tokens, scores, types, chat template) comes from the Phi-3 vocab-only
GGUF of llama.cpp's test models; the weights are random and tiny (2 layers, 64 wide),
so a model loads in milliseconds and decodes hundreds of tokens per second. What it
says is noise: tests that need sense use the real SmolLM2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

VOCAB = Path(__file__).parent.parent / "fixtures" / "llm" / "ggml-vocab-phi-3.gguf"

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
N_CTX_TRAIN = 4096


def build_tiny_model(path: Path, *, seed: int = 0, n_layer: int = N_LAYER) -> Path:
    """Write a tiny llama model with the Phi-3 vocabulary to `path`."""
    vocab = gguf.GGUFReader(VOCAB)
    tokens = [bytes(part) for part in _parts(vocab, "tokens")]
    scores = [float(part[0]) for part in _parts(vocab, "scores")]
    types = [int(part[0]) for part in _parts(vocab, "token_type")]
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_block_count(n_layer)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(32000)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(32000)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(str(vocab.fields["tokenizer.chat_template"].contents()))

    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int, scale: float = 0.05) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    kv = N_EMBD // N_HEAD * N_HEAD_KV
    tensor("token_embd.weight", n_vocab, N_EMBD, scale=1.0)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    tensor("output.weight", n_vocab, N_EMBD)
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        tensor(f"blk.{i}.attn_q.weight", N_EMBD, N_EMBD)
        tensor(f"blk.{i}.attn_k.weight", kv, N_EMBD)
        tensor(f"blk.{i}.attn_v.weight", kv, N_EMBD)
        tensor(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        tensor(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _parts(reader: gguf.GGUFReader, name: str) -> list[Any]:
    field = reader.fields[f"tokenizer.ggml.{name}"]
    return [field.parts[i] for i in field.data]
