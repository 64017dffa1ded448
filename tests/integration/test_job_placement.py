"""A job submitted without a node follows the heat: it lands on the node whose room
wants heat most, and on another one while that node is unreachable.

Real: two heatcompute nodes on 127.0.0.1 (serving a tiny random-weight model), each with
its own simulated room (the digital twin: a room at 19 °C that the node's watts would
heat) and its own config entry; each entry's thermostat reads its twin's room through
the room sensor the node provides and sets that node's heat target. Faked: only the
hardware (the twin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeassistant.components.climate.const import (
    ATTR_HVAC_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_TEMPERATURE,
    HVACMode,
)
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_TEMPERATURE,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.client import HeatcomputeClient
from custom_components.heatcompute.const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_JOB,
    CONF_MIN_OFF,
    CONF_MIN_RUN,
    CONF_ROOM_SENSOR,
    DOMAIN,
    SERVICE_SUBMIT_JOB,
)

from .conftest import (
    RunningNode,
    is_unavailable,
    make_entry,
    setup_entry,
    start_llm_node,
    wait_for_state,
)

# Where a job is queued is what these tests are about, not what it computes: the nodes
# serve a tiny random-weight model.
JOB = {"kind": "completions", "items": ["Heat from numbers"], "max_tokens": 4}
WARM_C = 12.0
"""A set point below the twin's 19 °C: that room wants no heat."""
COLD_C = 24.0
"""A set point above it: that room wants heat."""


@dataclass
class Room:
    """One node, its entry, and the entities its room is seen and heated by."""

    slug: str
    node: RunningNode
    entry: MockConfigEntry

    @property
    def climate(self) -> str:
        return f"climate.{self.slug}"

    @property
    def heat_target(self) -> str:
        return f"sensor.{self.slug}_heat_target"

    async def job_exists(self, hass: HomeAssistant, job_id: str) -> bool:
        """Whether this node's job store has the job (as an automation's REST call sees)."""
        node = self.node
        async with async_get_clientsession(hass).get(
            f"http://{node.host}:{node.port}/api/jobs/{job_id}",
            headers={"Authorization": f"Bearer {node.token}"},
        ) as response:
            assert response.status in (200, 404), await response.text()
            return response.status == 200


async def start_room(hass: HomeAssistant, tmp_path: Path, model: Path, name: str) -> Room:
    node = await start_llm_node(tmp_path / name, model, {"node_name": name})
    slug = name.replace(" ", "_")
    entry = make_entry(
        node,
        # Minimum run and off times of 0: a room that turns warm stops asking at once.
        options={
            CONF_ROOM_SENSOR: f"sensor.{slug}_room_temperature",
            CONF_MIN_RUN: 0.0,
            CONF_MIN_OFF: 0.0,
        },
    )
    await setup_entry(hass, entry)
    return Room(slug, node, entry)


@pytest.fixture
async def rooms(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> AsyncIterator[tuple[Room, Room]]:
    living = await start_room(hass, tmp_path, tiny_model, "living room")
    study = await start_room(hass, tmp_path, tiny_model, "study")
    try:
        yield living, study
    finally:
        for room in (living, study):
            await hass.config_entries.async_unload(room.entry.entry_id)
        await hass.async_block_till_done()
        for room in (living, study):
            await room.node.stop()


async def switch_off(hass: HomeAssistant, room: Room, switch: str) -> None:
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: f"switch.{room.slug}_{switch}"}, blocking=True
    )


async def set_point(hass: HomeAssistant, room: Room, celsius: float) -> None:
    """Set the room's thermostat, and wait until Home Assistant sees the node's new
    heat target (the router reads the nodes as their coordinators last saw them)."""
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_TEMPERATURE,
        {ATTR_ENTITY_ID: room.climate, ATTR_TEMPERATURE: celsius, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    wants_heat = celsius > 19.0
    assert room.node.node.heat.wanted is wants_heat

    def shown(state: str) -> bool:
        return state not in (STATE_UNKNOWN, STATE_UNAVAILABLE) and (float(state) > 0) is wants_heat

    await wait_for_state(hass, room.heat_target, shown)


async def submit(hass: HomeAssistant, job: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await hass.services.async_call(
        DOMAIN,
        SERVICE_SUBMIT_JOB,
        {ATTR_JOB: job or JOB},
        blocking=True,
        return_response=True,
    )
    assert isinstance(reply, dict)
    assert reply["state"] == "queued"
    return reply


async def test_a_job_without_a_node_follows_the_heat(
    hass: HomeAssistant, rooms: tuple[Room, Room]
) -> None:
    living, study = rooms

    # The living room is cold, the study warm: the job heats the living room.
    await set_point(hass, living, COLD_C)
    await set_point(hass, study, WARM_C)
    reply = await submit(hass)
    assert reply[ATTR_CONFIG_ENTRY_ID] == living.entry.entry_id
    assert await living.job_exists(hass, reply["id"])
    assert not await study.job_exists(hass, reply["id"])

    # The other way round (so neither the order of the entries nor the nodes' ids
    # decided): the job heats the study.
    await set_point(hass, living, WARM_C)
    await set_point(hass, study, COLD_C)
    reply = await submit(hass)
    assert reply[ATTR_CONFIG_ENTRY_ID] == study.entry.entry_id
    assert await study.job_exists(hass, reply["id"])
    assert not await living.job_exists(hass, reply["id"])

    # The study's node goes away: the job goes to the living room, which still works.
    await study.node.stop()
    await wait_for_state(hass, f"sensor.{study.slug}_power", is_unavailable)
    reply = await submit(hass)
    assert reply[ATTR_CONFIG_ENTRY_ID] == living.entry.entry_id
    assert await living.job_exists(hass, reply["id"])


async def test_a_node_with_background_jobs_off_is_passed_over(
    hass: HomeAssistant, rooms: tuple[Room, Room]
) -> None:
    """Its queue would hold the job without running it, however cold its room. A node
    that serves no requests (its "Serve requests" switch off) still runs jobs."""
    living, study = rooms
    await set_point(hass, living, COLD_C)
    await set_point(hass, study, WARM_C)
    await switch_off(hass, living, "serve_requests")
    reply = await submit(hass)
    assert reply[ATTR_CONFIG_ENTRY_ID] == living.entry.entry_id

    await switch_off(hass, living, "background_jobs")
    reply = await submit(hass)
    assert reply[ATTR_CONFIG_ENTRY_ID] == study.entry.entry_id

    # With neither node taking jobs, the action says so instead of queueing it anywhere.
    await switch_off(hass, study, "background_jobs")
    with pytest.raises(HomeAssistantError) as raised:
        await submit(hass)
    assert raised.value.translation_key == "no_node_for_jobs"


async def test_a_named_node_still_gets_the_job_and_says_so(
    hass: HomeAssistant, rooms: tuple[Room, Room]
) -> None:
    """Naming the node keeps working as before: the warm room's node gets the job."""
    living, study = rooms
    await set_point(hass, living, COLD_C)
    await set_point(hass, study, WARM_C)
    reply = await hass.services.async_call(
        DOMAIN,
        SERVICE_SUBMIT_JOB,
        {ATTR_CONFIG_ENTRY_ID: study.entry.entry_id, ATTR_JOB: JOB},
        blocking=True,
        return_response=True,
    )
    assert isinstance(reply, dict)
    assert reply[ATTR_CONFIG_ENTRY_ID] == study.entry.entry_id
    assert await study.job_exists(hass, str(reply["id"]))


async def test_a_bad_job_is_refused_by_the_chosen_node_not_retried_elsewhere(
    hass: HomeAssistant, rooms: tuple[Room, Room]
) -> None:
    """A job the node refuses for its content would be refused anywhere: the user reads
    the node's reason, and no other node's queue gets it."""
    living, study = rooms
    await set_point(hass, living, COLD_C)
    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SUBMIT_JOB,
            {ATTR_JOB: {"kind": "no such kind"}},
            blocking=True,
            return_response=True,
        )
    assert raised.value.translation_key == "node_refused"
    for room in rooms:
        client = HeatcomputeClient(
            room.node.host, room.node.port, room.node.token, session=async_get_clientsession(hass)
        )
        assert (await client.status()).jobs_pending == 0
