"""History and statistics through Home Assistant's own API (a node without the
recorder's file: MariaDB users, or a bare node elsewhere), against a real Home Assistant
with its real recorder (phacc's in-memory SQLite) on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.recorder.core import Recorder
from homeassistant.components.recorder.models import StatisticMeanType
from homeassistant.components.recorder.statistics import async_import_statistics
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import (  # type: ignore[import-untyped]
    async_wait_recording_done,
)

from custom_components.heatcompute.local_data import api_id

from .conftest import RunningNode, make_entry, setup_entry

ENERGY = "sensor.heater_energy"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """conftest's, after the recorder: phacc prepares its database before `hass`."""


@pytest.fixture(autouse=True)
async def core_integration(recorder_mock: Recorder, hass: HomeAssistant) -> None:
    """conftest's, with the recorder first: phacc prepares its database before `hass`."""
    assert await async_setup_component(hass, "homeassistant", {})


async def test_history_and_statistics_through_home_assistants_api(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    hass_client: Any,
    hass_access_token: str,
) -> None:
    # Everything that adds HTTP routes first: the server's router freezes once it runs.
    for component in ("api", "history", "websocket_api", "conversation"):
        assert await async_setup_component(hass, component, {})
    for value in ("20.5", "21.0", "21.5"):
        hass.states.async_set("sensor.living_temp", value, {"unit_of_measurement": "°C"})
        await hass.async_block_till_done()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    async_import_statistics(
        hass,
        {
            "has_mean": False,
            "mean_type": StatisticMeanType.NONE,
            "has_sum": True,
            "name": "Heater energy",
            "source": "recorder",
            "statistic_id": ENERGY,
            "unit_of_measurement": "kWh",
        },
        [
            {"start": hour - timedelta(hours=h), "state": 10.0 - h, "sum": 10.0 - h}
            for h in range(6, 0, -1)
        ],
    )
    await async_wait_recording_done(hass)
    web = await hass_client()

    node = RunningNode(tmp_path / "node")
    node.overrides = {
        "mcp_ha_url": str(web.make_url("")).rstrip("/"),
        "mcp_ha_token": hass_access_token,
    }
    await node.start()
    try:
        entry = make_entry(node)
        await setup_entry(hass, entry)
        context = llm.LLMContext("test", Context(), None, "en", "conversation", None)
        instance = await llm.async_get_api(hass, api_id(node.node.node_id), context)

        async def call(tool: str, **args: Any) -> Any:
            return await instance.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))

        history = await call(
            "ha_get_history",
            entity_id="sensor.living_temp",
            start=(hour - timedelta(hours=2)).isoformat(),
        )
        assert [p["state"] for p in history["points"]] == ["20.5", "21.0", "21.5"]

        statistics = await call(
            "ha_get_statistics",
            statistic_ids=[ENERGY, "sensor.nothing"],
            start=(hour - timedelta(hours=12)).isoformat(),
            period="hour",
        )
        rows = statistics["statistics"][ENERGY]
        assert [row["sum"] for row in rows] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        assert rows[0]["start"] == (hour - timedelta(hours=6)).isoformat()
        assert statistics["unknown_ids"] == ["sensor.nothing"]
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await node.stop()
