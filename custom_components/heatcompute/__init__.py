"""heatcompute: a machine whose power becomes room heat while it runs local AI work."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from . import local_data
from .client import HeatcomputeClient
from .const import CONF_TOKEN, DOMAIN
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, HeatcomputeData
from .fleet import async_get_fleet
from .fleet_issues import async_watch_fleet_workers
from .repair_issues import (
    async_forget_issues,
    async_watch_api_version,
    async_watch_assistant_model,
    async_watch_room_sensor,
)
from .services import async_setup_services
from .thermostat import Thermostat, ThermostatOptions
from .thermostat_store import ThermostatStore

PLATFORMS: list[Platform] = [
    Platform.CLIMATE,
    Platform.CONVERSATION,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, so they exist (and explain themselves) without an entry."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HeatcomputeConfigEntry) -> bool:
    client = HeatcomputeClient(
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data[CONF_TOKEN],
        session=async_get_clientsession(hass),
    )
    coordinator = HeatcomputeCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    thermostat = Thermostat(hass, coordinator, ThermostatOptions.from_options(entry.options))
    store = ThermostatStore(hass, entry.entry_id)
    await store.async_restore(thermostat)
    entry.runtime_data = HeatcomputeData(
        client=client, coordinator=coordinator, thermostat=thermostat
    )
    entry.async_on_unload(async_get_fleet(hass).async_join(coordinator))
    entry.async_on_unload(async_watch_api_version(hass, coordinator))
    entry.async_on_unload(async_watch_fleet_workers(hass, coordinator))
    entry.async_on_unload(async_watch_room_sensor(hass, entry, thermostat.options.room_sensor))
    entry.async_on_unload(async_watch_assistant_model(hass, entry, coordinator))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # The control loop belongs to the entry, not to the climate entity that shows it:
    # with that entity disabled the node must still get its heat target (and its
    # watchdog its refresh). Started once the platforms had their say on the state.
    entry.async_on_unload(store.async_follow(thermostat))
    entry.async_on_unload(thermostat.async_start())
    # The node's MCP bridge, for any conversation agent in Home Assistant.
    entry.async_on_unload(
        local_data.register(hass, client, entry.unique_id or entry.entry_id, entry.title)
    )
    coordinator.async_start_stream()
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HeatcomputeConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: HeatcomputeConfigEntry) -> None:
    await ThermostatStore(hass, entry.entry_id).async_remove()
    async_forget_issues(hass, entry.entry_id)


async def _async_options_updated(hass: HomeAssistant, entry: HeatcomputeConfigEntry) -> None:
    # The thermostat's set-up (sensors, power-mode entities) is read at setup. Data
    # updates (reauth, reconfigure) reload by themselves: only options need it here.
    if ThermostatOptions.from_options(entry.options) != entry.runtime_data.thermostat.options:
        await hass.config_entries.async_reload(entry.entry_id)
