"""Switches, numbers, actions, diagnostics and restore, against a real node."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.climate.const import (
    ATTR_HVAC_ACTION,
    ATTR_HVAC_MODE,
    ATTR_PRESET_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    SERVICE_SET_PRESET_MODE,
    SERVICE_SET_TEMPERATURE,
    HVACAction,
    HVACMode,
)
from homeassistant.components.number.const import (
    ATTR_VALUE,
    DOMAIN as NUMBER_DOMAIN,
    SERVICE_SET_VALUE,
)
from homeassistant.components.switch.const import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_TEMPERATURE,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)
from pytest_homeassistant_custom_component.components.diagnostics import (  # type: ignore[import-untyped]
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import (  # type: ignore[import-untyped]
    ClientSessionGenerator,
)

from custom_components.heatcompute.client import HeatcomputeOverloadedError
from custom_components.heatcompute.const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DURATION,
    ATTR_JOB,
    ATTR_POWER,
    CONF_ROOM_SENSOR,
    DOMAIN,
    SERVICE_SET_HEAT_TARGET,
    SERVICE_SUBMIT_JOB,
)
from custom_components.heatcompute.coordinator import translated_action_errors

from .conftest import RunningNode, heat_mode, make_entry, setup_entry, state, wait_for_state

CLIMATE = "climate.heatcompute"
ROOM = "sensor.room_temperature"


def set_room(hass: HomeAssistant, value: str, unit: str = UnitOfTemperature.CELSIUS) -> None:
    hass.states.async_set(ROOM, value, {"unit_of_measurement": unit})


# --- switches and numbers (`/api/config`) -----------------------------------------------


@pytest.mark.parametrize(
    ("entity_id", "field", "initially"),
    [
        ("switch.heatcompute_serve_requests", "serve_requests", True),
        ("switch.heatcompute_background_jobs", "background_jobs", True),
        ("switch.heatcompute_filler_heat", "filler", False),
    ],
)
async def test_switches_change_the_node_config(
    hass: HomeAssistant,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
    entity_id: str,
    field: str,
    initially: bool,
) -> None:
    assert state(hass, entity_id).state == (STATE_ON if initially else STATE_OFF)
    service = SERVICE_TURN_OFF if initially else SERVICE_TURN_ON
    await hass.services.async_call(
        SWITCH_DOMAIN, service, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )
    assert getattr(node.status().config, field) is (not initially)
    assert state(hass, entity_id).state == (STATE_OFF if initially else STATE_ON)


async def test_max_power_number(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    entity_id = "number.heatcompute_maximum_power"
    assert float(state(hass, entity_id).state) == 200.0
    assert state(hass, entity_id).attributes["max"] == 200.0
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: 150},
        blocking=True,
    )
    config = node.status().config
    assert config is not None
    assert config.max_power_w == 150.0
    assert float(state(hass, entity_id).state) == 150.0


async def test_node_refusal_is_a_translated_error(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """The node's own 400 reaches the user as the integration's message with its reason."""
    client = loaded_entry.runtime_data.client
    with pytest.raises(HomeAssistantError) as err:
        await translated_action_errors(client.update_config)(max_power_w=0)
    # The user's value was wrong, not the connection: a validation error.
    assert isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "node_refused"
    assert "max_power_w" in str(err.value.translation_placeholders)


async def test_a_busy_node_is_said_so() -> None:
    """A 429 is neither the user's fault nor a broken connection: "busy, try again"."""

    async def busy() -> None:
        raise HeatcomputeOverloadedError("too many jobs", "queue_full", 5.0)

    with pytest.raises(HomeAssistantError) as err:
        await translated_action_errors(busy)()
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "overloaded"


# --- the climate entity in power mode (no room sensor) ----------------------------------


async def test_power_mode(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """Without a room sensor the heater runs at the watts of the power-mode number."""
    climate = state(hass, CLIMATE)
    assert (
        ATTR_TEMPERATURE not in climate.attributes or climate.attributes[ATTR_TEMPERATURE] is None
    )
    assert float(state(hass, "number.heatcompute_power_mode_heat_target").state) == 120.0

    await hass.services.async_call(
        CLIMATE_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: CLIMATE}, blocking=True
    )
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 120.0

    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: "number.heatcompute_power_mode_heat_target", ATTR_VALUE: 80},
        blocking=True,
    )
    assert node.node.heat.target_w == 80.0
    assert state(hass, CLIMATE).attributes[ATTR_PRESET_MODE] is None

    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_PRESET_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_PRESET_MODE: "boost"},
        blocking=True,
    )
    assert node.node.heat.target_w == 200.0
    await wait_for_state(hass, "sensor.heatcompute_heat_target", lambda s: s == "200.0")
    assert state(hass, CLIMATE).attributes[ATTR_HVAC_ACTION] == HVACAction.HEATING

    await hass.services.async_call(
        CLIMATE_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: CLIMATE}, blocking=True
    )
    assert heat_mode(node) == "off"


async def test_room_sensor_in_fahrenheit_and_unavailable(
    hass: HomeAssistant, node: RunningNode
) -> None:
    """The controller works in °C; a sensor that drops out holds the last decision."""
    set_room(hass, "64.4", UnitOfTemperature.FAHRENHEIT)  # 18 °C
    await setup_entry(hass, make_entry(node, options={CONF_ROOM_SENSOR: ROOM}))
    assert state(hass, CLIMATE).attributes["current_temperature"] == pytest.approx(18.0)
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_HVAC_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    # 3 K below comfort (21 °C) with 200 W/K: all the node allows.
    assert node.node.heat.target_w == 200.0

    set_room(hass, STATE_UNAVAILABLE)
    await hass.async_block_till_done()
    assert state(hass, CLIMATE).attributes["current_temperature"] is None
    assert node.node.heat.target_w == 200.0
    set_room(hass, "warm")
    await hass.async_block_till_done()
    assert node.node.heat.target_w == 200.0


async def test_action_on_a_stopped_node_is_a_translated_error(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    await node.stop()
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SET_HEAT_TARGET,
            {
                ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id,
                ATTR_POWER: 50,
                ATTR_DURATION: {"minutes": 1},
            },
            blocking=True,
        )
    assert err.value.translation_key == "communication_error"


async def test_action_with_a_refused_token_is_a_translated_error(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    await node.stop()
    await node.start(token="another-token")
    thermostat = loaded_entry.runtime_data.thermostat
    with pytest.raises(HomeAssistantError) as err:
        await translated_action_errors(thermostat.async_set_hvac_mode)("heat")
    assert err.value.translation_key == "invalid_auth"


# --- actions ----------------------------------------------------------------------------


async def test_set_heat_target_for_a_while(
    hass: HomeAssistant,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Watts for a duration, then back to what the thermostat says (here: off)."""
    await hass.services.async_call(
        DOMAIN,
        SERVICE_SET_HEAT_TARGET,
        {
            ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id,
            ATTR_POWER: 90,
            ATTR_DURATION: {"minutes": 10},
        },
        blocking=True,
    )
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 90.0
    assert state(hass, CLIMATE).attributes[ATTR_HVAC_ACTION] == HVACAction.HEATING

    freezer.tick(timedelta(minutes=10, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert heat_mode(node) == "off"
    assert loaded_entry.runtime_data.thermostat.override is None


async def test_set_heat_target_refuses_too_much(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SET_HEAT_TARGET,
            {
                ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id,
                ATTR_POWER: 5000,
                ATTR_DURATION: {"minutes": 10},
            },
            blocking=True,
        )
    assert err.value.translation_key == "power_out_of_range"


async def test_actions_need_a_loaded_heatcompute_entry(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    call = {ATTR_POWER: 50, ATTR_DURATION: {"minutes": 1}}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SET_HEAT_TARGET,
            {ATTR_CONFIG_ENTRY_ID: "nope", **call},
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_found"

    await hass.config_entries.async_unload(loaded_entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SET_HEAT_TARGET,
            {ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id, **call},
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"


async def test_submit_job_without_a_model(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """The action hands the job to the node; a node without a chat model says so."""
    job = {"kind": "completions", "items": ["Once upon a time"], "max_tokens": 8}
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SUBMIT_JOB,
            {ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id, ATTR_JOB: job},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "node_refused"
    assert "no chat model" in str(err.value.translation_placeholders)
    assert node.node.status()["work"]["jobs_pending"] == 0


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        ({"kind": "embed"}, "kind must be one of chat, completions, embeddings"),
        ({"kind": "completions", "items": []}, "items must be a non-empty list"),
        ({"kind": "chat", "items": ["hi"]}, 'items[0]: must be {"messages": [...]}'),
        ({"kind": "completions", "items": ["hi"], "max_tokens": 0}, "max_tokens must be"),
        ({"kind": "embeddings", "items": ["hi"], "colour": "red"}, "unknown field(s): colour"),
    ],
)
async def test_submit_an_invalid_job(
    hass: HomeAssistant,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
    job: dict[str, Any],
    reason: str,
) -> None:
    """The node's reason for refusing a job reaches the user, translated; nothing queues.

    The node checks a job before it looks for a model, so this node without one says
    what is wrong with the job itself."""
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_SUBMIT_JOB,
            {ATTR_CONFIG_ENTRY_ID: loaded_entry.entry_id, ATTR_JOB: job},
            blocking=True,
            return_response=True,
        )
    assert isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "node_refused"
    assert err.value.translation_placeholders is not None
    assert reason in err.value.translation_placeholders["error"]
    # What the user reads: the integration's message around the node's reason.
    assert str(err.value).startswith("The heatcompute node refused the request: ")
    assert reason in str(err.value)
    assert node.node.status()["work"]["jobs_pending"] == 0


# --- diagnostics, restore, options ------------------------------------------------------


async def test_diagnostics_redact_the_token(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
) -> None:
    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(
        hass, hass_client, loaded_entry
    )
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert node.token not in str(diagnostics)
    assert diagnostics["status"]["node_id"] == node.node.node_id
    assert diagnostics["thermostat"]["power_mode"] is True


async def test_thermostat_state_survives_a_restart(hass: HomeAssistant, node: RunningNode) -> None:
    """Mode, set point and the controller's integral come back after a restart."""
    set_room(hass, "20.5")
    stored = {
        "hvac_mode": "heat",
        "preset": None,
        "target_temperature_c": 21.5,
        "power_target_w": 50.0,
        "override": None,
        "controller": {
            "integral_w": 80.0,
            "running": True,
            "switched_at": None,
            "updated_at": None,
            "output_w": 140.0,
        },
    }
    mock_restore_cache_with_extra_data(hass, [(State(CLIMATE, HVACMode.HEAT), stored)])
    await setup_entry(hass, make_entry(node, options={CONF_ROOM_SENSOR: ROOM}))
    climate = state(hass, CLIMATE)
    assert climate.state == HVACMode.HEAT
    assert climate.attributes[ATTR_TEMPERATURE] == 21.5
    # 1 K below target: 200 W/K · 1 K + the restored 80 W integral, capped at 200 W.
    assert node.node.heat.target_w == 200.0
    assert loaded_thermostat(hass).controller.state.integral_w == pytest.approx(80.0)


def loaded_thermostat(hass: HomeAssistant) -> Any:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    return entry.runtime_data.thermostat


async def test_options_change_reloads_into_thermostat_mode(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    assert hass.states.get("number.heatcompute_power_mode_heat_target") is not None
    set_room(hass, "19.0")
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, CONF_ROOM_SENSOR: ROOM}
    )
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert state(hass, CLIMATE).attributes["current_temperature"] == 19.0
    assert state(hass, "number.heatcompute_power_mode_heat_target").state == STATE_UNAVAILABLE

    # A data-only update (as reauth makes) does not reload through the options listener.
    hass.config_entries.async_update_entry(loaded_entry, title="renamed")
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_set_temperature_to_a_preset_value_selects_it(
    hass: HomeAssistant, node: RunningNode
) -> None:
    set_room(hass, "21.0")
    await setup_entry(hass, make_entry(node, options={CONF_ROOM_SENSOR: ROOM}))
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_TEMPERATURE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_TEMPERATURE: 16.0},
        blocking=True,
    )
    assert state(hass, CLIMATE).attributes[ATTR_PRESET_MODE] == "away"
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_TEMPERATURE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_TEMPERATURE: 17.5},
        blocking=True,
    )
    assert state(hass, CLIMATE).attributes[ATTR_PRESET_MODE] is None


async def test_override_survives_a_restart_then_ends(
    hass: HomeAssistant, node: RunningNode, freezer: FrozenDateTimeFactory
) -> None:
    """An automation's watts outlive a restart until their time is up, not longer."""
    until = dt_util.utcnow().timestamp() + 300
    stored = {"hvac_mode": "off", "override": {"power_w": 70.0, "until": until}}
    mock_restore_cache_with_extra_data(hass, [(State(CLIMATE, HVACMode.OFF), stored)])
    await setup_entry(hass, make_entry(node))
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 70.0
    assert state(hass, CLIMATE).attributes[ATTR_HVAC_ACTION] == HVACAction.HEATING

    freezer.tick(timedelta(seconds=301))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert heat_mode(node) == "off"


@pytest.mark.parametrize(
    "override",
    [
        {"power_w": 70.0, "until": 1.0},  # over while Home Assistant was down
        {"power_w": "junk", "until": None},
    ],
)
async def test_stale_or_broken_override_is_dropped(
    hass: HomeAssistant, node: RunningNode, override: dict[str, Any]
) -> None:
    stored = {"hvac_mode": "off", "override": override}
    mock_restore_cache_with_extra_data(hass, [(State(CLIMATE, HVACMode.OFF), stored)])
    await setup_entry(hass, make_entry(node))
    assert loaded_thermostat(hass).override is None
    assert heat_mode(node) == "off"


async def test_control_pass_with_the_node_down_is_quiet(
    hass: HomeAssistant,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The minute's re-send fails while the node is away: a debug line, no error."""
    await node.stop()
    await wait_for_state(hass, CLIMATE, lambda s: s == STATE_UNAVAILABLE)
    caplog.clear()
    # Real time here: with the clock frozen, the node could not shut down its stream.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await hass.async_block_till_done()
    failed = [r for r in caplog.records if "could not send" in r.getMessage()]
    assert failed
    assert all(r.levelname == "DEBUG" and not r.exc_info for r in failed)
