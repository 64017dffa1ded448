"""The heatcompute integration: a compute heater as a Home Assistant device."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Nothing to set up globally; nodes are added as config entries."""
    del hass, config
    return True


__all__ = ["DOMAIN"]
