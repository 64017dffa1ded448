"""Set-up: by hand, from zeroconf, from the add-on; reauth, reconfigure and options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT, UnitOfPower, UnitOfTemperature
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from .agent_options import async_assistant_schema
from .client import (
    HeatcomputeAuthenticationError,
    HeatcomputeClient,
    HeatcomputeConnectionError,
    HeatcomputeError,
    NodeStatus,
)
from .const import (
    CONF_ADDON_SLUG,
    CONF_AWAY_TEMP,
    CONF_BOOST_TEMP,
    CONF_COMFORT_TEMP,
    CONF_ECO_TEMP,
    CONF_FEED_FORWARD,
    CONF_FLEET,
    CONF_KI,
    CONF_KP,
    CONF_MAX_POWER,
    CONF_MIN_OFF,
    CONF_MIN_POWER,
    CONF_MIN_RUN,
    CONF_OUTDOOR_SENSOR,
    CONF_ROOM_SENSOR,
    CONF_TOKEN,
    DEFAULT_AWAY_TEMP,
    DEFAULT_BOOST_TEMP,
    DEFAULT_COMFORT_TEMP,
    DEFAULT_ECO_TEMP,
    DEFAULT_FEED_FORWARD,
    DEFAULT_KI,
    DEFAULT_KP,
    DEFAULT_MAX_POWER,
    DEFAULT_MIN_OFF,
    DEFAULT_MIN_POWER,
    DEFAULT_MIN_RUN,
    DEFAULT_PORT,
    DOMAIN,
    LOGGER,
    MAX_TARGET_TEMP,
    MIN_TARGET_TEMP,
)
from .coordinator import HeatcomputeConfigEntry
from .fleet_options import async_apply_fleet_choice, fleet_schema
from .model_download import ModelDownloadSteps
from .pairing import PairingError

_TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_PORT_SELECTOR = vol.All(
    NumberSelector(NumberSelectorConfig(min=1, max=65535, mode=NumberSelectorMode.BOX)),
    vol.Coerce(int),
)


def _connection_schema(host: str | None = None, port: int = DEFAULT_PORT) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=host or vol.UNDEFINED): TextSelector(
                TextSelectorConfig(autocomplete="off")
            ),
            vol.Required(CONF_PORT, default=port): _PORT_SELECTOR,
            vol.Required(CONF_TOKEN): _TOKEN_SELECTOR,
        }
    )


class HeatcomputeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Find a node, check the token, and name the entry after the node."""

    VERSION = 1

    def __init__(self) -> None:
        self._host: str | None = None
        self._port: int = DEFAULT_PORT
        self._name: str | None = None
        self._addon_slug: str | None = None
        self._token: str | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: HeatcomputeConfigEntry) -> HeatcomputeOptionsFlow:
        return HeatcomputeOptionsFlow()

    async def _async_try_connect(
        self, host: str, port: int, token: str
    ) -> tuple[NodeStatus | None, dict[str, str]]:
        """The node's status, or the form errors explaining why there is none."""
        client = HeatcomputeClient(host, port, token, session=async_get_clientsession(self.hass))
        try:
            return await client.status(), {}
        except HeatcomputeAuthenticationError:
            return None, {CONF_TOKEN: "invalid_auth"}
        except HeatcomputeConnectionError:
            return None, {"base": "cannot_connect"}
        except HeatcomputeError:
            LOGGER.exception("unexpected answer from %s:%s", host, port)
            return None, {"base": "unknown"}

    # --- by hand -----------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            status, errors = await self._async_try_connect(
                user_input[CONF_HOST], user_input[CONF_PORT], user_input[CONF_TOKEN]
            )
            if status is not None:
                await self.async_set_unique_id(status.node_id, raise_on_progress=False)
                self._abort_if_unique_id_configured(
                    updates={CONF_HOST: user_input[CONF_HOST], CONF_PORT: user_input[CONF_PORT]}
                )
                return self.async_create_entry(title=status.name, data=user_input)
        schema = _connection_schema()
        if user_input is not None:
            schema = self.add_suggested_values_to_schema(
                schema, {k: v for k, v in user_input.items() if k != CONF_TOKEN}
            )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    # --- zeroconf: the node advertises itself, the user brings the token --------------

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        node_id = discovery_info.properties.get("node_id")
        if not node_id:
            return self.async_abort(reason="not_heatcompute_node")
        self._host, self._port = discovery_info.host, discovery_info.port or DEFAULT_PORT
        self._name = discovery_info.properties.get("name") or "heatcompute"
        await self.async_set_unique_id(node_id)
        self._abort_if_unique_id_configured(updates={CONF_HOST: self._host, CONF_PORT: self._port})
        self.context["title_placeholders"] = {"name": self._name}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._host is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            status, errors = await self._async_try_connect(
                self._host, self._port, user_input[CONF_TOKEN]
            )
            if status is not None:
                # The advertised id must be the node that answers.
                await self.async_set_unique_id(status.node_id)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=status.name,
                    data={
                        CONF_HOST: self._host,
                        CONF_PORT: self._port,
                        CONF_TOKEN: user_input[CONF_TOKEN],
                    },
                )
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): _TOKEN_SELECTOR}),
            description_placeholders={"name": self._name or "", "host": self._host},
            errors=errors,
        )

    # --- the add-on: Supervisor hands over host, port and token -------------------------

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        config = discovery_info.config
        try:
            host, port = str(config[CONF_HOST]), int(config[CONF_PORT])
            token = str(config[CONF_TOKEN])
        except (KeyError, TypeError, ValueError):
            return self.async_abort(reason="invalid_discovery_info")
        status, errors = await self._async_try_connect(host, port, token)
        if status is None:
            return self.async_abort(
                reason="invalid_auth" if CONF_TOKEN in errors else errors["base"]
            )
        await self.async_set_unique_id(status.node_id)
        # A re-installed add-on keeps its node id but may bring a new token or port.
        self._abort_if_unique_id_configured(
            updates={
                CONF_HOST: host,
                CONF_PORT: port,
                CONF_TOKEN: token,
                CONF_ADDON_SLUG: discovery_info.slug,
            }
        )
        self._host, self._port, self._token, self._name = host, port, token, status.name
        self._addon_slug = discovery_info.slug
        self.context["title_placeholders"] = {"name": status.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._host is not None
        assert self._token is not None
        if user_input is not None:
            return self.async_create_entry(
                title=self._name or "heatcompute",
                data={
                    CONF_HOST: self._host,
                    CONF_PORT: self._port,
                    CONF_TOKEN: self._token,
                    CONF_ADDON_SLUG: self._addon_slug,
                },
            )
        return self.async_show_form(
            step_id="hassio_confirm", description_placeholders={"name": self._name or ""}
        )

    # --- a new token, or a new address --------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            status, errors = await self._async_try_connect(
                entry.data[CONF_HOST], entry.data[CONF_PORT], user_input[CONF_TOKEN]
            )
            if status is not None:
                await self.async_set_unique_id(status.node_id)
                self._abort_if_unique_id_mismatch(reason="wrong_node")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_TOKEN: user_input[CONF_TOKEN]}
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): _TOKEN_SELECTOR}),
            description_placeholders={"name": entry.title},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            status, errors = await self._async_try_connect(
                user_input[CONF_HOST], user_input[CONF_PORT], user_input[CONF_TOKEN]
            )
            if status is not None:
                await self.async_set_unique_id(status.node_id)
                # Another node at the new address would silently take over this device.
                self._abort_if_unique_id_mismatch(reason="wrong_node")
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_connection_schema(entry.data[CONF_HOST], entry.data[CONF_PORT]),
            errors=errors,
        )


def _number(low: float, high: float, step: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=low, max=high, step=step, unit_of_measurement=unit, mode=NumberSelectorMode.BOX
        )
    )


_TEMP = UnitOfTemperature.CELSIUS
OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_ROOM_SENSOR): EntitySelector(
            EntitySelectorConfig(domain="sensor", device_class="temperature")
        ),
        vol.Optional(CONF_OUTDOOR_SENSOR): EntitySelector(
            EntitySelectorConfig(domain="sensor", device_class="temperature")
        ),
        vol.Required(CONF_MIN_POWER, default=DEFAULT_MIN_POWER): _number(
            0, 5000, 1, UnitOfPower.WATT
        ),
        vol.Required(CONF_MAX_POWER, default=DEFAULT_MAX_POWER): _number(
            1, 5000, 1, UnitOfPower.WATT
        ),
        vol.Required(CONF_KP, default=DEFAULT_KP): _number(0, 10000, 1, "W/K"),
        vol.Required(CONF_KI, default=DEFAULT_KI): _number(0, 10000, 1, "W/(K·h)"),
        vol.Required(CONF_FEED_FORWARD, default=DEFAULT_FEED_FORWARD): _number(0, 1000, 0.5, "W/K"),
        vol.Required(CONF_MIN_RUN, default=DEFAULT_MIN_RUN): _number(0, 120, 1, "min"),
        vol.Required(CONF_MIN_OFF, default=DEFAULT_MIN_OFF): _number(0, 120, 1, "min"),
        vol.Required(CONF_COMFORT_TEMP, default=DEFAULT_COMFORT_TEMP): _number(
            MIN_TARGET_TEMP, MAX_TARGET_TEMP, 0.5, _TEMP
        ),
        vol.Required(CONF_ECO_TEMP, default=DEFAULT_ECO_TEMP): _number(
            MIN_TARGET_TEMP, MAX_TARGET_TEMP, 0.5, _TEMP
        ),
        vol.Required(CONF_AWAY_TEMP, default=DEFAULT_AWAY_TEMP): _number(
            MIN_TARGET_TEMP, MAX_TARGET_TEMP, 0.5, _TEMP
        ),
        vol.Required(CONF_BOOST_TEMP, default=DEFAULT_BOOST_TEMP): _number(
            MIN_TARGET_TEMP, MAX_TARGET_TEMP, 0.5, _TEMP
        ),
    }
)


class HeatcomputeOptionsFlow(ModelDownloadSteps):
    """The thermostat's set-up: which sensors, which limits, how it is tuned; and the
    voice assistant's, which may download a recommended model first (model_download.py)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            if CONF_FLEET not in user_input and CONF_FLEET in self.config_entry.options:
                # A form without the section changes nothing about the split.
                user_input = {**user_input, CONF_FLEET: self.config_entry.options[CONF_FLEET]}
            if user_input[CONF_MIN_POWER] > user_input[CONF_MAX_POWER]:
                errors[CONF_MIN_POWER] = "min_above_max"
            elif user_input.get(CONF_OUTDOOR_SENSOR) and not user_input.get(CONF_ROOM_SENSOR):
                errors[CONF_OUTDOOR_SENSOR] = "outdoor_without_room"
            elif (failed := await self._async_pair(user_input)) is not None:
                errors["base"] = failed.reason
                placeholders = {"node": failed.node, "error": failed.detail}
            elif (wanted := await self.async_model_to_fetch(user_input)) is not None:
                return await self.async_fetch_then_save(wanted, user_input)
            else:
                return self.async_create_entry(data=user_input)
        # The voice assistant's options ride along as a section (agent_options.py), and
        # so does the split of a model over several nodes (fleet_options.py).
        schema = OPTIONS_SCHEMA.extend(await async_assistant_schema(self.hass, self.config_entry))
        schema = schema.extend(fleet_schema(self.hass, self.config_entry))
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or self.config_entry.options
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_pair(self, user_input: dict[str, Any]) -> PairingError | None:
        """Pair the nodes as the fleet section says; the failure, if any."""
        try:
            await async_apply_fleet_choice(self.hass, self.config_entry, user_input)
        except PairingError as err:
            LOGGER.info("pairing for %s stopped: %s", self.config_entry.title, err)
            return err
        return None
