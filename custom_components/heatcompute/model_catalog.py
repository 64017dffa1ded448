"""Chat models to recommend: small enough for a CPU, good enough to call Assist's tools.

The default model a node ships with, SmolLM2-135M, is there to prove the path works: it
answers, but it does not understand a request to act (asked to turn on a heater it wished
a wonderful holiday). These run on a CPU at 0.5-3 B parameters, in GGUF (Q4_K_M), and are
trained for tool calling. Every file is pinned by size and SHA-256; the node refuses a
download whose bytes do not match.

The checksums are Hugging Face's LFS object ids (SHA-256) of these files at the time of
writing, the same values several independent projects pin; a republished file fails the
check rather than slipping through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.helpers.selector import SelectOptionDict

_HF: Final = "https://huggingface.co"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendedModel:
    """One GGUF file to offer for download."""

    name: str
    """What people call it, for the label."""
    file_name: str
    """The file on the node; the model's id there is this without ".gguf"."""
    url: str
    sha256: str
    size_bytes: int
    parameters: str
    licence: str

    @property
    def model_id(self) -> str:
        return self.file_name.removesuffix(".gguf")

    @property
    def size_gb(self) -> float:
        return round(self.size_bytes / 1e9, 1)


QWEN25_1_5B: Final = RecommendedModel(
    name="Qwen2.5 1.5B Instruct",
    file_name="qwen2.5-1.5b-instruct-q4_k_m.gguf",
    url=f"{_HF}/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/main/qwen2.5-1.5b-instruct-q4_k_m.gguf",
    sha256="6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
    size_bytes=1_117_320_736,
    parameters="1.5 B",
    licence="Apache-2.0",
)

RECOMMENDED_MODELS: Final[tuple[RecommendedModel, ...]] = (
    # First: the one to take when unsure (tool calls that work, ~1 GB, a free licence).
    QWEN25_1_5B,
    RecommendedModel(
        name="Qwen2.5 0.5B Instruct",
        file_name="qwen2.5-0.5b-instruct-q4_k_m.gguf",
        url=f"{_HF}/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        sha256="74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
        size_bytes=491_400_032,
        parameters="0.5 B",
        licence="Apache-2.0",
    ),
    RecommendedModel(
        name="Qwen2.5 3B Instruct",
        file_name="qwen2.5-3b-instruct-q4_k_m.gguf",
        url=f"{_HF}/Qwen/Qwen2.5-3B-Instruct-GGUF/resolve/main/qwen2.5-3b-instruct-q4_k_m.gguf",
        sha256="626b4a6678b86442240e33df819e00132d3ba7dddfe1cdc4fbb18e0a9615c62d",
        size_bytes=2_104_932_768,
        parameters="3 B",
        licence="Qwen Research License",
    ),
    RecommendedModel(
        name="Llama 3.2 1B Instruct",
        file_name="Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        url=f"{_HF}/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        sha256="6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83",
        size_bytes=807_694_464,
        parameters="1 B",
        licence="Llama 3.2 Community License",
    ),
    RecommendedModel(
        name="Llama 3.2 3B Instruct",
        file_name="Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        url=f"{_HF}/bartowski/Llama-3.2-3B-Instruct-GGUF/resolve/main/Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        sha256="6c1a2b41161032677be168d354123594c0e6e67d2b9227c84f296ad037c728ff",
        size_bytes=2_019_377_696,
        parameters="3 B",
        licence="Llama 3.2 Community License",
    ),
)


CANNOT_ACT: Final = ("smollm2-135m",)
"""Beginnings of model ids (lower case) that cannot drive Assist's tools: SmolLM2-135M,
the node's default, asked to turn on a heater, wished a wonderful holiday. Running on
one of these, the assistant raises a repair that offers `recommended_for` the node."""

# Memory a model needs beyond its file (context cache, runtime), and what is left for the
# system, the node and its other models.
_CACHE_SHARE: Final = 0.25
_SYSTEM_BYTES: Final = 1_000_000_000


def cannot_act(model_id: str) -> bool:
    """Whether this model is known to answer requests to act with nonsense."""
    return model_id.lower().startswith(CANNOT_ACT)


def fits(model: RecommendedModel, memory_bytes: int) -> bool:
    return model.size_bytes * (1 + _CACHE_SHARE) + _SYSTEM_BYTES <= memory_bytes


def recommended_for(memory_bytes: int | None) -> RecommendedModel | None:
    """The model to take for a node with this much memory: the first of the list (it is
    in order of preference) that fits; the first while the node does not say; None if
    none fits (a model that swaps is no better than a small one)."""
    models = recommended_models()
    if memory_bytes is None:
        return models[0] if models else None
    return next((m for m in models if fits(m, memory_bytes)), None)


def recommended_models() -> tuple[RecommendedModel, ...]:
    """The list, read when asked (tests point it at a local server)."""
    return RECOMMENDED_MODELS


def recommended_model(model_id: str | None) -> RecommendedModel | None:
    """The recommended model with this id on the node (file name without .gguf)."""
    return next((m for m in recommended_models() if m.model_id == model_id), None)


DOWNLOAD_MARK: Final = "⬇"
"""Marks a choice that is downloaded on saving (a symbol: labels are not translated)."""


def model_choices(on_node: list[str]) -> list[SelectOptionDict]:
    """The node's models first, then the recommended ones it does not have yet."""
    choices = [SelectOptionDict(label=model_id, value=model_id) for model_id in on_node]
    choices += [
        SelectOptionDict(
            label=f"{DOWNLOAD_MARK} {m.name} ({m.size_gb:.1f} GB, {m.licence})", value=m.model_id
        )
        for m in recommended_models()
        if m.model_id not in on_node
    ]
    return choices
