"""Fixtures for the LLM engine and API tests: a tiny random model and the real SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from heatcompute_node.engines.llm.native import ContextConfig
from heatcompute_node.engines.llm.runtime import Runtime
from heatcompute_node.engines.llm.scheduler import Scheduler, SchedulerConfig
from heatcompute_node.engines.llm.tokenizer import Tokenizer

from .tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path) -> Iterator[Tokenizer]:
    tokenizer = Tokenizer(tiny_model)
    yield tokenizer
    tokenizer.close()


@pytest.fixture(scope="session")
def smollm2() -> Path:
    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is not linked into models/ (run scripts/setup)")
    return SMOLLM2


def make_scheduler(
    model: Path, tokenizer: Tokenizer, *, n_ctx: int = 1024, **config: int
) -> Scheduler:
    slots = config.get("n_slots", 8)
    context = ContextConfig(n_ctx=n_ctx, n_batch=256, n_seq_max=slots, n_threads=1)
    return Scheduler(
        tokenizer,
        lambda: Runtime.load(model, context),
        SchedulerConfig(**{"n_slots": slots, "n_batch": 256, "n_threads": 1, **config}),
    )


@pytest.fixture
def engine(tiny_model: Path, tiny_tokenizer: Tokenizer) -> Iterator[Scheduler]:
    scheduler = make_scheduler(tiny_model, tiny_tokenizer)
    yield scheduler
    scheduler.stop()
