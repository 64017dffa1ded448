"""A recommended model, downloaded from the options flow with progress, through a real
node's resumable, checked download. The "hub" is a model host on 127.0.0.1 serving a
tiny GGUF made here; the recommended list is pointed at it (that list is data)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
import hashlib
from typing import Any
from unittest.mock import patch

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESSED, FlowResultType
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute import model_catalog, model_download
from custom_components.heatcompute.const import CONF_ASSISTANT, CONF_MODEL, DOMAIN
from custom_components.heatcompute.model_catalog import DOWNLOAD_MARK, RecommendedModel
from heatcompute_node.api.openai_service import MANAGER_KEY
from tests.llm.tiny_model import build_tiny_model
from tests.model_server import ModelHost

from .conftest import RunningNode, make_entry, setup_entry


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf").read_bytes()


@pytest.fixture
async def host(socket_enabled: None, tiny_gguf: bytes) -> AsyncIterator[ModelHost]:
    served = ModelHost(files={"tiny-tools-q4_k_m.gguf": tiny_gguf}, hold_back=True)
    await served.start()
    yield served
    await served.close()


def recommend(host: ModelHost, data: bytes, *, sha256: str | None = None) -> RecommendedModel:
    return RecommendedModel(
        name="Tiny Tools 0.1B",
        file_name="tiny-tools-q4_k_m.gguf",
        url=host.url("tiny-tools-q4_k_m.gguf"),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        parameters="0.1 B",
        licence="Apache-2.0",
    )


@pytest.fixture
def fast_polls() -> Iterator[None]:
    """The flow asks the node for progress every second; tests need not wait that long."""
    with patch.object(model_download, "POLL_INTERVAL_S", 0.02):
        yield


@pytest.fixture
async def entry(hass: HomeAssistant, node: RunningNode) -> MockConfigEntry:
    loaded = make_entry(node)
    await setup_entry(hass, loaded)
    return loaded


def assistant_section(result: Any) -> Any:
    return result["data_schema"].schema[CONF_ASSISTANT]


def model_selector_labels(result: Any) -> dict[str, str]:
    for key, selector in assistant_section(result).schema.schema.items():
        if key == CONF_MODEL:
            return {o["value"]: o["label"] for o in selector.config["options"]}
    raise AssertionError("no model field")


def placeholders(result: Any) -> dict[str, str]:
    return dict(result["description_placeholders"] or {})


def flow_refreshes(hass: HomeAssistant, flow_id: str) -> asyncio.Queue[None]:
    """One item each time Home Assistant tells the frontend to reload the flow (what
    the dialog does when the download moved on)."""
    refreshes: asyncio.Queue[None] = asyncio.Queue()

    @callback
    def record(event: Event[dict[str, Any]]) -> None:
        if event.data["flow_id"] == flow_id:
            refreshes.put_nowait(None)

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESSED, record)
    return refreshes


async def test_a_recommended_model_downloads_with_progress_and_is_chosen(
    hass: HomeAssistant,
    node: RunningNode,
    entry: MockConfigEntry,
    host: ModelHost,
    tiny_gguf: bytes,
    fast_polls: None,
) -> None:
    wanted = recommend(host, tiny_gguf)
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        result = await hass.config_entries.options.async_init(entry.entry_id)
        labels = model_selector_labels(result)
        # The node's own models first, then the recommended one, marked for download.
        assert list(labels)[-1] == "tiny-tools-q4_k_m"
        label = f"{DOWNLOAD_MARK} Tiny Tools 0.1B (0.0 GB, Apache-2.0)"
        assert labels["tiny-tools-q4_k_m"] == label

        # The node has none of the recommended models: the section is open.
        assert assistant_section(result).options["collapsed"] is False

        flow_id = result["flow_id"]
        refreshes = flow_refreshes(hass, flow_id)
        result = await hass.config_entries.options.async_configure(
            flow_id, {CONF_ASSISTANT: {CONF_MODEL: "tiny-tools-q4_k_m"}}
        )
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        assert result["progress_action"] == "download_model"
        assert placeholders(result) == {
            "model": "Tiny Tools 0.1B",
            "size": "0.0",
            "licence": "Apache-2.0",
            "percent": "0",
        }

        # The host sends half the file and waits: the dialog, reloaded as the frontend
        # does on each refresh, comes to show 50 %.
        shown: list[str] = []
        while not shown or shown[-1] != "50":
            await asyncio.wait_for(refreshes.get(), 10)
            result = await hass.config_entries.options.async_configure(flow_id)
            assert result["type"] is FlowResultType.SHOW_PROGRESS
            shown.append(placeholders(result)["percent"])
        assert entry.options.get(CONF_ASSISTANT) is None  # nothing saved yet

        host.release.set()
        # The manager moves the flow on by itself when the download ends; the dialog
        # then loads the outcome.
        await hass.async_block_till_done()
        result = await hass.config_entries.options.async_configure(flow_id)
        assert result["type"] is FlowResultType.CREATE_ENTRY

    assert entry.options[CONF_ASSISTANT][CONF_MODEL] == "tiny-tools-q4_k_m"
    assert node.app is not None
    manager = node.app[MANAGER_KEY]
    assert manager.find("tiny-tools-q4_k_m", "chat").path.read_bytes() == tiny_gguf
    assert host.requests == ["tiny-tools-q4_k_m.gguf"]


async def test_a_wrong_checksum_is_refused_with_a_translated_reason(
    hass: HomeAssistant,
    node: RunningNode,
    entry: MockConfigEntry,
    host: ModelHost,
    tiny_gguf: bytes,
    fast_polls: None,
) -> None:
    host.hold_back = False
    wanted = recommend(host, tiny_gguf, sha256="0" * 64)
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_ASSISTANT: {CONF_MODEL: "tiny-tools-q4_k_m"}}
        )
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await hass.async_block_till_done()
        result = await hass.config_entries.options.async_configure(result["flow_id"])

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "checksum_mismatch"
    assert result["description_placeholders"] == {"model": "Tiny Tools 0.1B"}
    assert entry.options.get(CONF_ASSISTANT) is None  # nothing saved
    assert node.app is not None
    models_dir = node.app[MANAGER_KEY].models_dir
    assert models_dir is not None
    assert not (models_dir / "tiny-tools-q4_k_m.gguf").exists()
    # The reason and the progress text are translated (English and German).
    for language in ("en", "de"):
        texts = await async_get_translations(hass, language, "options", {DOMAIN})
        reason = texts[f"component.{DOMAIN}.options.abort.checksum_mismatch"]
        assert "{model}" in reason
        assert f"component.{DOMAIN}.options.progress.download_model" in texts


async def test_a_model_the_node_has_is_not_downloaded_again(
    hass: HomeAssistant,
    node: RunningNode,
    entry: MockConfigEntry,
    host: ModelHost,
    tiny_gguf: bytes,
) -> None:
    assert node.app is not None
    models_dir = node.app[MANAGER_KEY].models_dir
    assert models_dir is not None
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / "tiny-tools-q4_k_m.gguf").write_bytes(tiny_gguf)
    node.app[MANAGER_KEY].scan()
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (recommend(host, tiny_gguf),)):
        result = await hass.config_entries.options.async_init(entry.entry_id)
        labels = model_selector_labels(result)
        assert labels["tiny-tools-q4_k_m"] == "tiny-tools-q4_k_m"  # on the node: no mark
        assert assistant_section(result).options["collapsed"] is True
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_ASSISTANT: {CONF_MODEL: "tiny-tools-q4_k_m"}}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert host.requests == []


def test_the_recommended_models_are_pinned() -> None:
    """Every entry names a GGUF by URL, size and SHA-256, and the first is the default
    the docs point people to."""
    models = model_catalog.RECOMMENDED_MODELS
    assert models[0] is model_catalog.QWEN25_1_5B
    for model in models:
        assert model.url.startswith("https://huggingface.co/")
        assert model.url.endswith("/" + model.file_name)
        assert len(model.sha256) == 64
        assert int(model.sha256, 16) >= 0  # hex digits only
        assert 0.3e9 < model.size_bytes < 2.2e9  # 0.5-3 B parameters at 4 bits
    assert len({m.sha256 for m in models}) == len(models)


@pytest.mark.parametrize(
    ("served", "size_bytes", "stop_node", "reason"),
    [
        # The node checks its disk before it fetches a byte (HTTP 507).
        (b"", 1 << 60, False, "insufficient_storage"),
        # Bytes that match their checksum but are no model: deleted, never registered.
        (b"not a model\n" * 100, None, False, "invalid_model"),
        # The host has no such file.
        (None, None, False, "download_failed"),
        # The node went away between the form and the submit.
        (b"", None, True, "cannot_connect"),
    ],
)
async def test_a_failed_download_saves_nothing_and_says_why(
    hass: HomeAssistant,
    node: RunningNode,
    entry: MockConfigEntry,
    host: ModelHost,
    fast_polls: None,
    served: bytes | None,
    size_bytes: int | None,
    stop_node: bool,
    reason: str,
) -> None:
    host.hold_back = False
    data = served or b""
    if served is None:
        host.files.clear()
    else:
        host.files["tiny-tools-q4_k_m.gguf"] = data
    wanted = recommend(host, data)
    if size_bytes is not None:
        wanted = replace(wanted, size_bytes=size_bytes)
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        result = await hass.config_entries.options.async_init(entry.entry_id)
        if stop_node:
            await node.stop()
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_ASSISTANT: {CONF_MODEL: "tiny-tools-q4_k_m"}}
        )
        await hass.async_block_till_done()
        result = await hass.config_entries.options.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason
    assert entry.options.get(CONF_ASSISTANT) is None
    texts = await async_get_translations(hass, "de", "options", {DOMAIN})
    assert f"component.{DOMAIN}.options.abort.{reason}" in texts


async def test_a_download_needs_a_loaded_entry(hass: HomeAssistant, node: RunningNode) -> None:
    """An entry that is not set up has no node to ask: the flow says so."""
    idle = make_entry(node)
    idle.add_to_hass(hass)
    wanted = replace(model_catalog.QWEN25_1_5B, url="http://127.0.0.1:9/none.gguf")
    with patch.object(model_catalog, "RECOMMENDED_MODELS", (wanted,)):
        result = await hass.config_entries.options.async_init(idle.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_ASSISTANT: {CONF_MODEL: wanted.model_id}}
        )
        await hass.async_block_till_done()
        result = await hass.config_entries.options.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "cannot_connect"
