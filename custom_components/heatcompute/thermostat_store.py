"""The thermostat's state (mode, set point, controller integral) across restarts.

Kept by the config entry, like the control loop itself: a disabled climate entity
must neither stop the loop nor lose what it had learned.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .thermostat import Thermostat

STORAGE_VERSION = 1
# Every control pass changes the integral a little: write at most this often.
SAVE_DELAY_S = 10.0


class ThermostatStore:
    """One entry's thermostat state in `.storage/heatcompute.<entry id>.thermostat`."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store = Store[dict[str, Any]](
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.thermostat"
        )

    async def async_restore(self, thermostat: Thermostat) -> None:
        """Give `thermostat` its stored state, if there is one."""
        stored = await self._store.async_load()
        if isinstance(stored, dict):
            thermostat.restore(stored)

    @callback
    def async_follow(self, thermostat: Thermostat) -> Callable[[], Coroutine[Any, Any, None]]:
        """Save the state after every control pass; returns the function that stops it
        (and saves at once: a reload must find the latest state, not one 10 s old)."""

        @callback
        def changed() -> None:
            self._store.async_delay_save(thermostat.as_dict, SAVE_DELAY_S)

        # One save now: state restored from elsewhere (the climate entity's restore data,
        # before this store existed) is kept here from now on.
        changed()
        stop_listening = thermostat.async_add_listener(changed)

        def stop() -> Coroutine[Any, Any, None]:
            stop_listening()
            return self._store.async_save(thermostat.as_dict())

        return stop

    async def async_remove(self) -> None:
        await self._store.async_remove()
