"""The repair that offers a model that can act, while the assistant runs on SmolLM2.

A real node on 127.0.0.1 lists the real SmolLM2-135M (the default it ships); the fix
flow is driven through Home Assistant's repairs HTTP API and websocket, as the frontend
does, and downloads a tiny GGUF from a model host on 127.0.0.1 through the node's
checked download. The recommended list is pointed at that host (the list is data).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import hashlib
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESSED
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.typing import (  # type: ignore[import-untyped]
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.heatcompute import model_catalog, model_download
from custom_components.heatcompute.const import (
    CONF_ASSISTANT,
    CONF_LLM_API,
    CONF_MODEL,
    CONF_PROMPT,
    DOMAIN,
)
from custom_components.heatcompute.model_catalog import RecommendedModel
from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.engines.llm.models import EngineSettings
from tests.llm.tiny_model import build_tiny_model
from tests.model_server import ModelHost

from .conftest import RunningNode, make_entry, setup_entry
from .voice import ask, setup_home

ISSUE = "assistant_model_cannot_act"
SMOLLM2_ID = "SmolLM2-135M-Instruct.Q8_0"
TINY = "tiny-tools-q4_k_m"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf").read_bytes()


@pytest.fixture
async def host(socket_enabled: None, tiny_gguf: bytes) -> AsyncIterator[ModelHost]:
    served = ModelHost(files={f"{TINY}.gguf": tiny_gguf}, hold_back=True)
    await served.start()
    yield served
    await served.close()


def tiny_recommended(
    host: ModelHost, data: bytes, *, sha256: str | None = None
) -> RecommendedModel:
    return RecommendedModel(
        name="Tiny Tools 0.1B",
        file_name=f"{TINY}.gguf",
        url=host.url(f"{TINY}.gguf"),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        parameters="0.1 B",
        licence="Apache-2.0",
    )


@pytest.fixture
def recommended(host: ModelHost, tiny_gguf: bytes) -> Iterator[RecommendedModel]:
    """The recommended list holds the tiny model only."""
    wanted = tiny_recommended(host, tiny_gguf)
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        yield wanted


@pytest.fixture
def fast_polls() -> Iterator[None]:
    with patch.object(model_download, "POLL_INTERVAL_S", 0.02):
        yield


@pytest.fixture
async def smollm2_listed(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> AsyncIterator[RunningNode]:
    """A node with SmolLM2 (as the add-on ships it); nothing is loaded or generated."""
    node = RunningNode(tmp_path / "node", models=(smollm2,))
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


# The assistant may control Home Assistant: only then does a model that cannot act matter.
ASSIST = "assist"


def issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{ISSUE}_{entry.entry_id}")


def chosen_model(entry: MockConfigEntry) -> str | None:
    model: str | None = (entry.options.get(CONF_ASSISTANT) or {}).get(CONF_MODEL)
    return model


def flow_refreshes(hass: HomeAssistant, flow_id: str) -> asyncio.Queue[None]:
    """One item each time Home Assistant tells the frontend to reload the flow."""
    refreshes: asyncio.Queue[None] = asyncio.Queue()

    @callback
    def record(event: Event[dict[str, Any]]) -> None:
        if event.data["flow_id"] == flow_id:
            refreshes.put_nowait(None)

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESSED, record)
    return refreshes


class RepairsApi:
    """The repairs HTTP API, as the frontend's fix dialog uses it."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def start(self, entry: MockConfigEntry) -> dict[str, Any]:
        return await self._json(
            "post",
            "/api/repairs/issues/fix",
            {"handler": DOMAIN, "issue_id": f"{ISSUE}_{entry.entry_id}"},
        )

    async def submit(self, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self._json("post", f"/api/repairs/issues/fix/{flow_id}", data)

    async def reload(self, flow_id: str) -> dict[str, Any]:
        return await self._json("get", f"/api/repairs/issues/fix/{flow_id}", None)

    async def _json(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        response = await getattr(self._client, method)(path, json=body)
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


type OpenRepairs = Callable[[], Awaitable[RepairsApi]]


@pytest.fixture
def open_repairs(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> OpenRepairs:
    """The repairs API; opened once the entry is set up (HTTP routes freeze on start)."""

    async def open_api() -> RepairsApi:
        assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
        return RepairsApi(await hass_client())

    return open_api


async def test_the_default_model_raises_the_issue_a_model_that_can_act_does_not(
    hass: HomeAssistant, smollm2_listed: RunningNode
) -> None:
    # No model chosen: the assistant answers with the node's first chat model, SmolLM2.
    entry = make_entry(
        smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_PROMPT: "Be brief."}}
    )
    await setup_entry(hass, entry)
    raised = issue(hass, entry)
    assert raised is not None
    assert raised.is_fixable
    assert raised.severity is ir.IssueSeverity.WARNING
    # The node here has more than enough memory: the first choice of the real list.
    assert raised.translation_placeholders == {
        "name": "heatcompute",
        "current": SMOLLM2_ID,
        "better": "Qwen2.5 1.5B Instruct",
        "size": "1.1",
        "licence": "Apache-2.0",
    }
    assert raised.data == {"entry_id": entry.entry_id, "model": "qwen2.5-1.5b-instruct-q4_k_m"}

    # Choosing a model that can act (in the options) withdraws it.
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_MODEL: "qwen2.5-1.5b-instruct-q4_k_m"}
        },
    )
    await hass.async_block_till_done()
    assert issue(hass, entry) is None


async def test_an_assistant_without_control_raises_no_issue(
    hass: HomeAssistant, smollm2_listed: RunningNode
) -> None:
    """SmolLM2 chats well enough: without control of Home Assistant there is nothing it
    fails to do, so no repair nags; allowing control raises it."""
    entry = make_entry(smollm2_listed, options={CONF_ASSISTANT: {CONF_PROMPT: "Be brief."}})
    await setup_entry(hass, entry)
    assert issue(hass, entry) is None

    hass.config_entries.async_update_entry(
        entry, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_PROMPT: "Be brief."}}
    )
    await hass.async_block_till_done()
    assert issue(hass, entry) is not None


async def test_the_chosen_model_counts_not_the_nodes_first(
    hass: HomeAssistant, smollm2_listed: RunningNode
) -> None:
    """A model that can act, chosen: no issue, though SmolLM2 is listed first; SmolLM2
    chosen by name: the issue."""
    entry = make_entry(
        smollm2_listed,
        options={
            CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_MODEL: "Llama-3.2-1B-Instruct-Q4_K_M"}
        },
    )
    await setup_entry(hass, entry)
    assert issue(hass, entry) is None

    hass.config_entries.async_update_entry(
        entry, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_MODEL: SMOLLM2_ID}}
    )
    await hass.async_block_till_done()
    raised = issue(hass, entry)
    assert raised is not None
    assert raised.translation_placeholders is not None
    assert raised.translation_placeholders["current"] == SMOLLM2_ID


async def test_the_offer_fits_the_nodes_memory(
    hass: HomeAssistant, smollm2_listed: RunningNode
) -> None:
    """A 2 GB node is offered the 0.5 B model; a 1 GB node nothing (it would swap)."""
    smollm2_listed.node.memory_bytes = 2_000_000_000
    entry = make_entry(smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST}})
    await setup_entry(hass, entry)
    raised = issue(hass, entry)
    assert raised is not None
    assert raised.translation_placeholders is not None
    assert raised.translation_placeholders["better"] == "Qwen2.5 0.5B Instruct"

    smollm2_listed.node.memory_bytes = 1_000_000_000
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert issue(hass, entry) is None


async def test_the_fix_flow_downloads_switches_the_model_and_clears_the_issue(
    hass: HomeAssistant,
    smollm2_listed: RunningNode,
    host: ModelHost,
    tiny_gguf: bytes,
    recommended: RecommendedModel,
    fast_polls: None,
    open_repairs: OpenRepairs,
) -> None:
    entry = make_entry(
        smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_PROMPT: "Be brief."}}
    )
    await setup_entry(hass, entry)
    repairs = await open_repairs()
    assert issue(hass, entry) is not None

    # Click 1: the issue opens its fix flow, which says what it will do.
    flow = await repairs.start(entry)
    assert flow["type"] == "form"
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {
        "name": "heatcompute",
        "current": SMOLLM2_ID,
        "better": "Tiny Tools 0.1B",
        "size": "0.0",
        "licence": "Apache-2.0",
    }
    flow_id = flow["flow_id"]
    refreshes = flow_refreshes(hass, flow_id)

    # Click 2: Submit starts the download; the dialog shows how far it got.
    flow = await repairs.submit(flow_id, {})
    assert flow["type"] == "progress"
    assert flow["progress_action"] == "download_model"
    assert flow["description_placeholders"]["percent"] == "0"
    shown: list[str] = []
    while not shown or shown[-1] != "50":  # the host sends half and waits
        await asyncio.wait_for(refreshes.get(), 10)
        flow = await repairs.reload(flow_id)
        assert flow["type"] == "progress"
        shown.append(flow["description_placeholders"]["percent"])
    assert chosen_model(entry) is None  # nothing switched yet
    assert issue(hass, entry) is not None

    host.release.set()
    # The dialog follows each refresh until the manager moved the flow on.
    while flow["type"] == "progress":
        await asyncio.wait_for(refreshes.get(), 10)
        flow = await repairs.reload(flow_id)
    assert flow["type"] == "create_entry"
    await hass.async_block_till_done()

    assert chosen_model(entry) == TINY
    assert entry.options[CONF_ASSISTANT][CONF_PROMPT] == "Be brief."  # the rest is kept
    assert smollm2_listed.app is not None
    manager = smollm2_listed.app[MANAGER_KEY]
    assert manager.find(TINY, "chat").path.read_bytes() == tiny_gguf
    assert host.requests == [f"{TINY}.gguf"]
    assert issue(hass, entry) is None

    # The assistant answers with the new model now: the node loads it for the turn (what
    # a random-weight model says is noise), and SmolLM2 stays unloaded.
    manager.settings = EngineSettings(n_ctx=2048, n_slots=1, n_threads=1)
    await setup_home(hass)
    agent_id = er.async_get(hass).async_get_entity_id(
        "conversation", DOMAIN, f"{smollm2_listed.node.node_id}_assistant"
    )
    assert agent_id is not None
    result = await ask(hass, agent_id, "Turn on the heater")
    assert result["response"]["response_type"] == "action_done"
    assert manager.find(TINY, "chat").state == "loaded"
    assert manager.find(SMOLLM2_ID, "chat").state != "loaded"

    # A reload (a restart) checks again: the assistant can act now, no issue.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert issue(hass, entry) is None


async def test_a_model_the_node_has_is_switched_to_without_a_download(
    hass: HomeAssistant,
    smollm2_listed: RunningNode,
    host: ModelHost,
    tiny_gguf: bytes,
    recommended: RecommendedModel,
    open_repairs: OpenRepairs,
) -> None:
    """Downloaded earlier but never chosen: the node still answers with SmolLM2 (first)."""
    assert smollm2_listed.app is not None
    manager = smollm2_listed.app[MANAGER_KEY]
    assert manager.models_dir is not None
    manager.models_dir.mkdir(parents=True, exist_ok=True)
    (manager.models_dir / f"{TINY}.gguf").write_bytes(tiny_gguf)
    manager.scan()
    entry = make_entry(smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST}})
    await setup_entry(hass, entry)
    repairs = await open_repairs()
    assert issue(hass, entry) is not None

    flow = await repairs.start(entry)
    flow = await repairs.submit(flow["flow_id"], {})
    assert flow["type"] == "create_entry"
    await hass.async_block_till_done()
    assert chosen_model(entry) == TINY
    assert host.requests == []
    assert issue(hass, entry) is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("bad_checksum", "checksum_mismatch"),
        ("host_down", "host_unreachable"),  # the node cannot reach the model host
        ("node_down", "cannot_connect"),  # Home Assistant cannot reach the node
    ],
)
async def test_a_failed_download_says_why_and_keeps_the_issue_and_the_model(
    hass: HomeAssistant,
    smollm2_listed: RunningNode,
    host: ModelHost,
    tiny_gguf: bytes,
    fast_polls: None,
    open_repairs: OpenRepairs,
    failure: str,
    reason: str,
) -> None:
    host.hold_back = False
    wanted = tiny_recommended(
        host, tiny_gguf, sha256="0" * 64 if failure == "bad_checksum" else None
    )
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        entry = make_entry(smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST}})
        await setup_entry(hass, entry)
        repairs = await open_repairs()
        flow = await repairs.start(entry)
        if failure == "host_down":
            await host.close()
        if failure == "node_down":
            await smollm2_listed.stop()
        flow_id = flow["flow_id"]
        refreshes = flow_refreshes(hass, flow_id)
        flow = await repairs.submit(flow_id, {})
        while flow["type"] == "progress":
            await asyncio.wait_for(refreshes.get(), 10)
            flow = await repairs.reload(flow_id)

    assert flow["type"] == "abort"
    assert flow["reason"] == reason
    assert flow["description_placeholders"] == {"model": "Tiny Tools 0.1B"}
    # The issue stays for another try, and the assistant keeps its model.
    assert issue(hass, entry) is not None
    assert chosen_model(entry) is None
    if failure != "node_down":
        assert smollm2_listed.app is not None
        models_dir = smollm2_listed.app[MANAGER_KEY].models_dir
        assert models_dir is not None
        assert not (models_dir / f"{TINY}.gguf").exists()
    # The reason is translated (English and German), with the model in it.
    for language in ("en", "de"):
        texts = await async_get_translations(hass, language, "issues", {DOMAIN})
        text = texts[f"component.{DOMAIN}.issues.{ISSUE}.fix_flow.abort.{reason}"]
        assert "{model}" in text or reason == "cannot_connect"


async def test_an_ignored_issue_stays_away(
    hass: HomeAssistant,
    smollm2_listed: RunningNode,
    hass_ws_client: WebSocketGenerator,
) -> None:
    entry = make_entry(smollm2_listed, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST}})
    await setup_entry(hass, entry)
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    assert issue(hass, entry) is not None

    # "Ignore" in the repair's menu, as the frontend sends it.
    ws = await hass_ws_client(hass)
    await ws.send_json(
        {
            "id": 1,
            "type": "repairs/ignore_issue",
            "domain": DOMAIN,
            "issue_id": f"{ISSUE}_{entry.entry_id}",
            "ignore": True,
        }
    )
    assert (await ws.receive_json())["success"]

    async def shown_issues() -> list[str]:
        await ws.send_json({"id": next(ids), "type": "repairs/list_issues"})
        answer = await ws.receive_json()
        return [i["issue_id"] for i in answer["result"]["issues"] if not i["ignored"]]

    ids = iter(range(2, 100))
    assert await shown_issues() == []

    # Not after a reload (a restart checks again), nor after choosing a model that can
    # act and going back to SmolLM2.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert await shown_issues() == []
    for model in ("qwen2.5-1.5b-instruct-q4_k_m", SMOLLM2_ID):
        hass.config_entries.async_update_entry(
            entry, options={CONF_ASSISTANT: {CONF_LLM_API: ASSIST, CONF_MODEL: model}}
        )
        await hass.async_block_till_done()
        assert await shown_issues() == []
    kept = issue(hass, entry)
    assert kept is not None
    assert kept.dismissed_version is not None

    # Removing the entry takes the issue with it.
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue(hass, entry) is None


def test_the_catalog_knows_which_models_cannot_act_and_what_fits() -> None:
    assert model_catalog.cannot_act(SMOLLM2_ID)
    assert model_catalog.cannot_act("smollm2-135m-instruct-q4_1")
    assert not model_catalog.cannot_act("qwen2.5-1.5b-instruct-q4_k_m")
    first = model_catalog.QWEN25_1_5B
    assert model_catalog.recommended_for(None) is first  # the node does not say
    assert model_catalog.recommended_for(24_000_000_000) is first
    # 1.12 GB of file, a quarter more for the cache, 1 GB for the rest: 2.4 GB.
    assert model_catalog.recommended_for(2_400_000_000) is first
    small = model_catalog.recommended_for(2_300_000_000)
    assert small is not None
    assert small.name == "Qwen2.5 0.5B Instruct"
    assert model_catalog.recommended_for(1_500_000_000) is None
