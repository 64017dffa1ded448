"""A job from Home Assistant, end to end: the submit_job action to the job's results.

Real: Home Assistant with the integration set up through its config entry (the climate
entity, the sensors, the event stream); the node on 127.0.0.1 with its job store,
executor, heat controller and governor; the LLM engine (llama.cpp, continuous batching)
on the tiny random-weight model the LLM tests build, so the job takes a second or two.
Faked: the hardware, the thermal twin whose watts are this process's CPU time; and the
room thermometer, a state the test sets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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
    STATE_UNKNOWN,
    UnitOfTemperature,
)
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_JOB,
    CONF_ROOM_SENSOR,
    DOMAIN,
    SERVICE_SUBMIT_JOB,
)

from .conftest import RunningNode, make_entry, setup_entry, start_llm_node, state, wait_for_state

CLIMATE = "climate.heatcompute"
ROOM = "sensor.room_temperature"
JOBS_PENDING = "sensor.heatcompute_jobs_pending"
TOKENS_PER_S = "sensor.heatcompute_tokens_per_second"
ENERGY_PER_1K_TOKENS = "sensor.heatcompute_energy_per_1000_tokens"
PROMPTS = ["Once upon a time", "The warmest room in the house", "Heat from numbers"]
MAX_TOKENS = 8
# The engine loads the model on the first item, and the governor ramps up from idle:
# seconds on a quiet machine, more on two shared cores. A bound, not a wait.
JOB_TIMEOUT_S = 90.0


@pytest.fixture
async def llm_node(
    socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> AsyncIterator[RunningNode]:
    node = await start_llm_node(tmp_path / "node", tiny_model)
    try:
        yield node
    finally:
        await node.stop()


class StateLog:
    """Every state the watched entities take, in order (from state-changed events)."""

    def __init__(self, hass: HomeAssistant, entity_ids: list[str]) -> None:
        self.states: dict[str, list[str]] = {entity_id: [] for entity_id in entity_ids}

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is not None:
                self.states[event.data["entity_id"]].append(new.state)

        self.unsubscribe = async_track_state_change_event(hass, entity_ids, changed)


@pytest.fixture
async def entry(
    hass: HomeAssistant, llm_node: RunningNode, state_log: StateLog
) -> AsyncIterator[MockConfigEntry]:
    """The integration in thermostat mode; after `state_log`, which sees every state."""
    node = llm_node
    hass.states.async_set(ROOM, "18.0", {"unit_of_measurement": UnitOfTemperature.CELSIUS})
    # Disabled by default (a diagnostic figure): enabled here, as a user would, to watch it.
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"{node.node.node_id}_energy_per_1k_tokens",
        suggested_object_id="heatcompute_energy_per_1000_tokens",
    )
    loaded = make_entry(node, options={CONF_ROOM_SENSOR: ROOM})
    await setup_entry(hass, loaded)
    yield loaded
    # Before the node stops: else the coordinator logs the node going away.
    await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
def state_log(hass: HomeAssistant) -> Iterator[StateLog]:
    """The sensors' states from the first one on (`entry` is set up after it)."""
    log = StateLog(hass, [JOBS_PENDING, TOKENS_PER_S, ENERGY_PER_1K_TOKENS])
    yield log
    log.unsubscribe()


async def get_job(hass: HomeAssistant, node: RunningNode, job_id: str) -> dict[str, Any]:
    """The job with its results, straight from the node's API (the integration has no
    read-back of jobs: this is what an automation's REST call would see)."""
    async with async_get_clientsession(hass).get(
        f"http://{node.host}:{node.port}/api/jobs/{job_id}",
        headers={"Authorization": f"Bearer {node.token}"},
    ) as response:
        assert response.status == 200, await response.text()
        job: dict[str, Any] = await response.json()
        return job


async def test_a_job_from_home_assistant_runs_when_heat_is_wanted(
    hass: HomeAssistant, llm_node: RunningNode, state_log: StateLog, entry: MockConfigEntry
) -> None:
    """Submitted from Home Assistant, the job waits for heat, runs once the thermostat
    asks for it, and completes with one result per prompt; the sensors show it."""
    node = llm_node
    assert state(hass, JOBS_PENDING).state == "0"
    assert float(state(hass, TOKENS_PER_S).state) == 0.0
    assert state(hass, ENERGY_PER_1K_TOKENS).state == STATE_UNKNOWN

    job = {"kind": "completions", "items": PROMPTS, "max_tokens": MAX_TOKENS, "seed": 7}
    reply = await hass.services.async_call(
        DOMAIN,
        SERVICE_SUBMIT_JOB,
        {ATTR_CONFIG_ENTRY_ID: entry.entry_id, ATTR_JOB: job},
        blocking=True,
        return_response=True,
    )
    # The action answers the node's job as it was queued.
    assert isinstance(reply, dict)
    assert reply["state"] == "queued"
    assert reply["progress"] == {"total": 3, "done": 0, "failed": 0, "ratio": 0.0}
    job_id = reply["id"]
    assert isinstance(job_id, str)
    # No heat wanted and no deadline: the job waits, and Home Assistant shows it waiting.
    await wait_for_state(hass, JOBS_PENDING, lambda s: s == "1")
    assert (await get_job(hass, node, job_id))["state"] == "queued"

    # 4 K below the set point: the thermostat asks the node for all the heat it allows.
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_TEMPERATURE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_TEMPERATURE: 22.0, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    assert node.node.heat.wanted
    # One job: no job pending means it is finished, however it ended.
    await wait_for_state(hass, JOBS_PENDING, lambda s: s == "0", timeout=JOB_TIMEOUT_S)

    done = await get_job(hass, node, job_id)
    assert done["state"] == "completed", done
    assert done["progress"] == {"total": 3, "done": 3, "failed": 0, "ratio": 1.0}
    results = done["results"]
    # One result per prompt, in prompt order: none lost, none recorded twice.
    assert [result["index"] for result in results] == [0, 1, 2]
    for result in results:
        assert "error" not in result
        assert isinstance(result["text"], str)
        assert result["finish_reason"] in ("length", "stop")
    usage = done["usage"]
    assert 0 < usage["completion_tokens"] <= len(PROMPTS) * MAX_TOKENS
    assert usage["prompt_tokens"] > 0
    assert done["energy"]["wh"] > 0
    assert done["deadline_missed"] is False

    # Home Assistant saw it all: the job waiting then done, tokens made, their energy.
    assert state_log.states[JOBS_PENDING] == ["0", "1", "0"]
    assert any(float(s) > 0 for s in state_log.states[TOKENS_PER_S])
    assert float(state(hass, ENERGY_PER_1K_TOKENS).state) > 0
