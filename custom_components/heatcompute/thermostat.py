"""The thermostat at run time: decides the node's heat target and sends it.

One per config entry, in its runtime data, because several things steer the same heat
target: the climate entity (mode, set point, preset), the power-mode number, and the
`set_heat_target` action (watts for a while, then back to the thermostat). The PI
arithmetic lives in `controller.py`; this module feeds it Home Assistant's sensors and
time and talks to the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfTemperature,
)
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import (
    async_call_later,
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.util import dt as dt_util
from homeassistant.util.unit_conversion import TemperatureConverter

from .client import HeatcomputeError, HeatMode
from .const import (
    CONF_AWAY_TEMP,
    CONF_BOOST_TEMP,
    CONF_COMFORT_TEMP,
    CONF_ECO_TEMP,
    CONF_FEED_FORWARD,
    CONF_KI,
    CONF_KP,
    CONF_MAX_POWER,
    CONF_MIN_OFF,
    CONF_MIN_POWER,
    CONF_MIN_RUN,
    CONF_OUTDOOR_SENSOR,
    CONF_ROOM_SENSOR,
    CONTROL_INTERVAL,
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
    LOGGER,
    POWER_MODE_PRESET_SHARE,
    PRESET_AWAY,
    PRESET_BOOST,
    PRESET_COMFORT,
    PRESET_ECO,
    PRESETS,
)
from .controller import ControllerSettings, ControllerState, PIController
from .coordinator import HeatcomputeCoordinator

type HvacMode = Literal["off", "heat"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermostatOptions:
    """The options flow's answers, typed."""

    room_sensor: str | None
    outdoor_sensor: str | None
    min_power_w: float
    max_power_w: float
    kp_w_per_k: float
    ki_w_per_kh: float
    feed_forward_w_per_k: float
    min_run_s: float
    min_off_s: float
    preset_temperatures: Mapping[str, float]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ThermostatOptions:
        return cls(
            room_sensor=options.get(CONF_ROOM_SENSOR) or None,
            outdoor_sensor=options.get(CONF_OUTDOOR_SENSOR) or None,
            min_power_w=float(options.get(CONF_MIN_POWER, DEFAULT_MIN_POWER)),
            max_power_w=float(options.get(CONF_MAX_POWER, DEFAULT_MAX_POWER)),
            kp_w_per_k=float(options.get(CONF_KP, DEFAULT_KP)),
            ki_w_per_kh=float(options.get(CONF_KI, DEFAULT_KI)),
            feed_forward_w_per_k=float(options.get(CONF_FEED_FORWARD, DEFAULT_FEED_FORWARD)),
            min_run_s=60 * float(options.get(CONF_MIN_RUN, DEFAULT_MIN_RUN)),
            min_off_s=60 * float(options.get(CONF_MIN_OFF, DEFAULT_MIN_OFF)),
            preset_temperatures={
                PRESET_COMFORT: float(options.get(CONF_COMFORT_TEMP, DEFAULT_COMFORT_TEMP)),
                PRESET_ECO: float(options.get(CONF_ECO_TEMP, DEFAULT_ECO_TEMP)),
                PRESET_AWAY: float(options.get(CONF_AWAY_TEMP, DEFAULT_AWAY_TEMP)),
                PRESET_BOOST: float(options.get(CONF_BOOST_TEMP, DEFAULT_BOOST_TEMP)),
            },
        )


@dataclass(frozen=True, slots=True)
class Override:
    """Watts set by an automation, until a moment (epoch s)."""

    power_w: float
    until: float


class Thermostat:
    """Mode, set point, presets, power mode and overrides -> one heat target on the node."""

    def __init__(
        self, hass: HomeAssistant, coordinator: HeatcomputeCoordinator, options: ThermostatOptions
    ) -> None:
        self.hass = hass
        self.coordinator = coordinator
        self.options = options
        # A newly added heater stays off until someone turns it on.
        self.hvac_mode: HvacMode = "off"
        self.preset: str | None = PRESET_COMFORT
        self.target_temperature_c = options.preset_temperatures[PRESET_COMFORT]
        self.power_target_w = POWER_MODE_PRESET_SHARE[PRESET_COMFORT] * options.max_power_w
        self.override: Override | None = None
        self.output_w = 0.0
        self.controller = PIController(self._controller_settings(options.max_power_w))
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._cancel_override: CALLBACK_TYPE | None = None
        self._send_lock = asyncio.Lock()
        self._sent: tuple[HeatMode, float] | None = None
        self.restored = False
        """Whether a stored state was taken back (see `restore`)."""

    # --- what the entities read --------------------------------------------------------

    @property
    def power_mode(self) -> bool:
        """Without a room sensor there is nothing to control on: the user sets watts."""
        return self.options.room_sensor is None

    @property
    def max_power_w(self) -> float:
        """The option, capped by what the node accepts now."""
        node_max = self.coordinator.data.heat.max_power_w if self.coordinator.data else None
        return min(self.options.max_power_w, node_max or self.options.max_power_w)

    @property
    def room_temperature_c(self) -> float | None:
        return self._sensor_value(self.options.room_sensor)

    @property
    def outdoor_temperature_c(self) -> float | None:
        return self._sensor_value(self.options.outdoor_sensor)

    @property
    def heating(self) -> bool:
        return self.output_w > 0

    def _sensor_value(self, entity_id: str | None) -> float | None:
        if entity_id is None or (state := self.hass.states.get(entity_id)) is None:
            return None
        if state.state in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            return None
        try:
            value = float(state.state)
        except ValueError:
            return None
        # The controller works in °C whatever unit the sensor reports in.
        unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
        if unit in TemperatureConverter.VALID_UNITS and unit != UnitOfTemperature.CELSIUS:
            return TemperatureConverter.convert(value, unit, UnitOfTemperature.CELSIUS)
        return value

    # --- life cycle --------------------------------------------------------------------

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever the thermostat's state changes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Start the control loop; returns the function that stops it."""
        self._unsubscribe.append(
            async_track_time_interval(
                self.hass, self._async_tick, CONTROL_INTERVAL, name="heatcompute control"
            )
        )
        if self.options.room_sensor is not None:
            self._unsubscribe.append(
                async_track_state_change_event(
                    self.hass, self.options.room_sensor, self._async_room_changed
                )
            )
        if self.override is not None:
            self._arm_override_end()
        self.hass.async_create_task(self._async_control_quietly(), eager_start=False)
        return self.async_stop

    @callback
    def async_stop(self) -> None:
        while self._unsubscribe:
            self._unsubscribe.pop()()
        if self._cancel_override is not None:
            self._cancel_override()
            self._cancel_override = None

    @callback
    def _async_tick(self, _now: datetime) -> None:
        # A tracked task, not a background one: a control pass is one short request,
        # and whoever waits for Home Assistant to be idle should see it finished.
        self.hass.async_create_task(self._async_control_quietly(force=True), eager_start=True)

    @callback
    def _async_room_changed(self, _event: Event[EventStateChangedData]) -> None:
        self.hass.async_create_task(self._async_control_quietly(), eager_start=True)

    async def _async_control_quietly(self, *, force: bool = False) -> None:
        """Timer-driven control: a node that is down shows as unavailable entities, not errors."""
        try:
            await self.async_control(force=force)
        except HeatcomputeError as err:
            LOGGER.debug("could not send the heat target: %s", err)

    # --- user actions (errors propagate to the caller) ---------------------------------

    async def async_set_hvac_mode(self, mode: HvacMode) -> None:
        self.hvac_mode = mode
        await self.async_control()

    async def async_set_target_temperature(self, temperature_c: float) -> None:
        self.target_temperature_c = temperature_c
        presets = self.options.preset_temperatures
        self.preset = next((name for name, temp in presets.items() if temp == temperature_c), None)
        await self.async_control()

    async def async_set_preset(self, preset: str) -> None:
        # Home Assistant has checked the name against the entity's preset modes.
        self.preset = preset
        self.target_temperature_c = self.options.preset_temperatures[preset]
        self.power_target_w = POWER_MODE_PRESET_SHARE[preset] * self.options.max_power_w
        await self.async_control()

    async def async_set_power_target(self, power_w: float) -> None:
        self.power_target_w = power_w
        self.preset = None
        await self.async_control()

    async def async_set_override(self, power_w: float, duration: timedelta) -> None:
        """Run at `power_w` for `duration`, whatever the thermostat says, then hand back."""
        self.override = Override(power_w, dt_util.utcnow().timestamp() + duration.total_seconds())
        self._arm_override_end()
        await self.async_control()

    def _arm_override_end(self) -> None:
        if self._cancel_override is not None:
            self._cancel_override()
        assert self.override is not None
        delay = max(self.override.until - dt_util.utcnow().timestamp(), 0.0)
        self._cancel_override = async_call_later(self.hass, delay, self._async_override_ended)

    @callback
    def _async_override_ended(self, _now: datetime) -> None:
        self._cancel_override = None
        self.override = None
        self.hass.async_create_task(self._async_control_quietly(force=True), eager_start=True)

    # --- the decision ------------------------------------------------------------------

    def _controller_settings(self, max_power_w: float) -> ControllerSettings:
        o = self.options
        return ControllerSettings(
            kp_w_per_k=o.kp_w_per_k,
            ki_w_per_kh=o.ki_w_per_kh,
            min_power_w=min(o.min_power_w, max_power_w),
            max_power_w=max_power_w,
            min_run_s=o.min_run_s,
            min_off_s=o.min_off_s,
            feed_forward_w_per_k=o.feed_forward_w_per_k,
        )

    def decide(self, now: float) -> tuple[HeatMode, float]:
        """The heat target for this moment: (mode, watts)."""
        max_w = self.max_power_w
        if self.controller.settings.max_power_w != max_w:
            self.controller.settings = self._controller_settings(max_w)
        if self.override is not None and now < self.override.until:
            # The thermostat starts afresh when the override hands back.
            self.controller.stop(now)
            return "heat", min(max(self.override.power_w, 0.0), max_w)
        if self.hvac_mode == "off":
            self.controller.stop(now)
            return "off", 0.0
        if self.power_mode:
            return "heat", min(max(self.power_target_w, 0.0), max_w)
        room_c = self.room_temperature_c
        if room_c is None:
            # No reading (sensor restarting): keep what was decided last rather than guess.
            return "heat", self.controller.state.output_w
        return "heat", self.controller.update(
            setpoint_c=self.target_temperature_c,
            room_c=room_c,
            now=now,
            outside_c=self.outdoor_temperature_c,
        )

    async def async_control(self, *, force: bool = False) -> None:
        """Decide and send the heat target when it changed (or always, when forced)."""
        async with self._send_lock:
            now = dt_util.utcnow().timestamp()
            mode, watts = self.decide(now)
            self.output_w = watts if mode == "heat" else 0.0
            for listener in list(self._listeners):
                listener()
            target = (mode, round(watts, 1))
            if not force and target == self._sent:
                return
            await self.coordinator.client.set_heat(mode, watts if mode == "heat" else None)
            self._sent = target

    # --- persistence -------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "hvac_mode": self.hvac_mode,
            "preset": self.preset,
            "target_temperature_c": self.target_temperature_c,
            "power_target_w": self.power_target_w,
            "override": (
                {"power_w": self.override.power_w, "until": self.override.until}
                if self.override is not None
                else None
            ),
            "controller": self.controller.state.as_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back the state stored before a restart; ignore what does not fit."""
        self.restored = True
        if data.get("hvac_mode") in ("off", "heat"):
            self.hvac_mode = data["hvac_mode"]
        preset = data.get("preset")
        self.preset = preset if preset in PRESETS else None
        if isinstance(temperature := data.get("target_temperature_c"), int | float):
            self.target_temperature_c = float(temperature)
        if isinstance(power := data.get("power_target_w"), int | float):
            self.power_target_w = float(power)
        override = data.get("override")
        if isinstance(override, Mapping):
            until, power = override.get("until"), override.get("power_w")
            # An override that ended while Home Assistant was down is simply over.
            if (
                isinstance(until, int | float)
                and isinstance(power, int | float)
                and until > dt_util.utcnow().timestamp()
            ):
                self.override = Override(float(power), float(until))
        if isinstance(state := data.get("controller"), Mapping):
            self.controller = replace(self.controller, state=ControllerState.from_dict(dict(state)))
