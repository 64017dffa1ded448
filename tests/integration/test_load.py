"""Home Assistant loads the integration."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component

from custom_components.heatcompute.const import DOMAIN


async def test_integration_loads(hass: HomeAssistant) -> None:
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.version is not None
    assert await async_setup_component(hass, DOMAIN, {})
    assert DOMAIN in hass.config.components
