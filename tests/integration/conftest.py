"""Fixtures for the Home Assistant side: a real node on 127.0.0.1, started in-process.

The integration only ever sees the node's HTTP API; the tests may import the node
package to start one and to look at what it really holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
import socket
from typing import Any
from unittest.mock import AsyncMock, patch

from aiohttp import web
from homeassistant.const import CONF_HOST, CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.client import NodeStatus
from custom_components.heatcompute.const import CONF_TOKEN, DOMAIN
from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.llm.models import EngineSettings
from heatcompute_node.node import Node
from heatcompute_node.settings import Settings
from tests.llm.tiny_model import build_tiny_model

TOKEN = "test-token-0123456789"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Every test here loads the custom component."""


@pytest.fixture(autouse=True)
async def core_integration(hass: HomeAssistant) -> None:
    """Home Assistant's core integration, always loaded in a real instance: the
    conversation platform (the voice assistant) needs its exposed-entity settings."""
    assert await async_setup_component(hass, "homeassistant", {})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RunningNode:
    """A real heatcompute node on 127.0.0.1 that a test can stop and start again.

    Restarting keeps the data directory, so the node keeps its id (and energy counter),
    just like a node that is rebooted.
    """

    def __init__(
        self,
        data_dir: Path,
        token: str = TOKEN,
        max_power_w: float = 200.0,
        models: tuple[Path, ...] = (),
        status_interval_s: float = 0.1,
        onnx_repository: Path | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.onnx_repository = onnx_repository
        self.port = free_port()
        self.data_dir = data_dir
        self.token = token
        self.max_power_w = max_power_w
        self.models = models
        self.status_interval_s = status_interval_s
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.overrides: dict[str, Any] = {}
        """More node settings (the MCP bridge's folders, databases, networks)."""

    @property
    def node(self) -> Node:
        assert self.app is not None
        return self.app[NODE_KEY]

    def status(self) -> NodeStatus:
        return NodeStatus.from_dict(self.node.status())

    async def start(self, token: str | None = None) -> None:
        if token is not None:
            self.token = token
        settings = Settings(
            host=self.host,
            port=self.port,
            data_dir=self.data_dir,
            hardware="twin",
            zeroconf=False,
            token=self.token,
            max_power_w=self.max_power_w,
            models=self.models,
            onnx_repository=self.onnx_repository,
            # Sample quickly (unless a test measures the real cadence) so status changes
            # reach subscribers fast in tests.
            status_interval_s=self.status_interval_s,
            **self.overrides,
        )
        self.app = create_app(settings)
        # The SSE handlers never end by themselves: cancel them when their client goes
        # away, and don't wait long for them at shutdown.
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.2, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def entry_data(self, **overrides: Any) -> dict[str, Any]:
        return {CONF_HOST: self.host, CONF_PORT: self.port, CONF_TOKEN: self.token, **overrides}


async def start_llm_node(
    data_dir: Path, model: Path, overrides: dict[str, Any] | None = None
) -> RunningNode:
    """A node serving `model`; its engine on one thread, as the tests share two cores
    (llama.cpp's threads spin on each other when a busy machine deschedules one)."""
    node = RunningNode(data_dir, models=(model,))
    node.overrides = overrides or {}
    await node.start()
    assert node.app is not None
    # The model loads on the first request, with the settings in place by then.
    node.app[MANAGER_KEY].settings = EngineSettings(n_ctx=8192, n_slots=4, n_threads=1)
    return node


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight GGUF that loads in milliseconds: for tests about where work goes
    and how it is queued, not about what a model says."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture
async def node(socket_enabled: None, tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A running node; stopped at the end of the test."""
    running = RunningNode(tmp_path / "node")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def make_entry(
    node: RunningNode, options: dict[str, Any] | None = None, **data: Any
) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="heatcompute",
        unique_id=node.node.node_id if node.app is not None else "0123456789ab",
        data=node.entry_data(**data),
        options=options or {},
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def loaded_entry(hass: HomeAssistant, node: RunningNode) -> AsyncIterator[MockConfigEntry]:
    """The integration set up against the running node (power mode: no room sensor)."""
    entry = make_entry(node)
    await setup_entry(hass, entry)
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def wait_for_state(
    hass: HomeAssistant,
    entity_id: str,
    predicate: Callable[[str], bool],
    timeout: float = 10.0,
) -> str:
    """Wait (on state-changed events, not on a timer) until the entity's state matches."""
    state = hass.states.get(entity_id)
    if state is not None and predicate(state.state):
        return state.state
    matched: asyncio.Future[str] = hass.loop.create_future()

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and predicate(new.state) and not matched.done():
            matched.set_result(new.state)

    unsubscribe = async_track_state_change_event(hass, entity_id, changed)
    try:
        return await asyncio.wait_for(matched, timeout)
    finally:
        unsubscribe()


def state(hass: HomeAssistant, entity_id: str) -> State:
    """The entity's state, which the test expects to exist."""
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found


def heat_mode(node: RunningNode) -> str:
    """The node's heat mode now (a function, so a type checker does not pin it)."""
    return node.node.heat.mode


def is_unavailable(state: str) -> bool:
    return state == STATE_UNAVAILABLE


def is_available(state: str) -> bool:
    return state != STATE_UNAVAILABLE


def sample_status(**overrides: Any) -> NodeStatus:
    """A node status for tests that don't need a running node (config flows)."""
    data: dict[str, Any] = {
        "node_id": "0123456789ab",
        "name": "heatcompute",
        "version": "0.1.0",
        "api_version": "1",
        "hardware": "twin",
        "heat": {"mode": "off", "target_w": 0.0, "max_power_w": 200.0, "wanted": False},
        "power_w": 15.0,
        "energy_kwh": 0.5,
    }
    data.update(overrides)
    return NodeStatus.from_dict(data)


@pytest.fixture
def mock_status() -> Generator[AsyncMock]:
    """Patch the client's status call (config-flow tests)."""
    with patch(
        "custom_components.heatcompute.config_flow.HeatcomputeClient.status",
        new_callable=AsyncMock,
        return_value=sample_status(),
    ) as status:
        yield status


@pytest.fixture
def mock_setup_entry() -> Generator[AsyncMock]:
    """Config-flow tests check the flow, not the set-up of the entry it creates."""
    with patch(
        "custom_components.heatcompute.async_setup_entry", return_value=True
    ) as setup_entry_mock:
        yield setup_entry_mock


# --- a node serving the real SmolLM2 (the voice tests) -------------------------------

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"


@pytest.fixture
def smollm2() -> Path:
    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is not linked into models/ (run scripts/setup)")
    return SMOLLM2


@pytest.fixture
async def smollm2_node(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> AsyncIterator[RunningNode]:
    node = await start_llm_node(tmp_path / "node", smollm2)
    try:
        yield node
    finally:
        await node.stop()
