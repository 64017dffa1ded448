"""The thermostat's outer loop: a PI controller from room error (K) to a heat target (W).

Pure: no Home Assistant, no I/O, time is passed in (seconds since the epoch), so its
state can be stored and restored across restarts and tested on a simulated clock.

The machine cannot usefully run below `min_power_w` (the cores would wake up for
nothing), so the output is either 0 W (off) or between min and max power. Between
0 and min power the controller keeps what it was doing: a running heater stays at
min power until the demand drops to zero, a stopped one waits until the demand
reaches min power. That band, plus minimum run and off times, keeps it from chattering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# A restart after a long pause must not integrate hours of error in one step.
MAX_STEP_S = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings:
    """Tuning and limits. Gains are in user terms: W per K, and W per K per hour."""

    kp_w_per_k: float
    ki_w_per_kh: float
    min_power_w: float
    max_power_w: float
    min_run_s: float = 0.0
    min_off_s: float = 0.0
    feed_forward_w_per_k: float = 0.0
    """Heat loss per K of (target - outside); 0 without an outdoor sensor."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_power_w <= self.max_power_w:
            raise ValueError("need 0 <= min_power_w <= max_power_w")
        if self.kp_w_per_k < 0 or self.ki_w_per_kh < 0:
            raise ValueError("gains must not be negative")


@dataclass(slots=True, kw_only=True)
class ControllerState:
    """Everything the controller remembers; stored across Home Assistant restarts."""

    integral_w: float = 0.0
    running: bool = False
    switched_at: float | None = None
    """When the heater last started or stopped (epoch s); None: long enough ago."""
    updated_at: float | None = None
    output_w: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControllerState:
        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            integral_w=number("integral_w") or 0.0,
            running=bool(data.get("running", False)),
            switched_at=number("switched_at"),
            updated_at=number("updated_at"),
            output_w=number("output_w") or 0.0,
        )


@dataclass(slots=True)
class PIController:
    """PI with feed-forward, conditional-integration anti-windup and run/off times."""

    settings: ControllerSettings
    state: ControllerState = field(default_factory=ControllerState)

    def stop(self, now: float) -> None:
        """The heater is switched off from outside (mode off, an override): start afresh.

        The off time still counts from now, so the minimum off time protects it.
        """
        switched_at = now if self.state.running else self.state.switched_at
        self.state = ControllerState(switched_at=switched_at)

    def update(
        self,
        *,
        setpoint_c: float,
        room_c: float,
        now: float,
        outside_c: float | None = None,
    ) -> float:
        """Advance to `now` and return the heat target in W (0 or min..max power)."""
        s, st = self.settings, self.state
        dt = 0.0 if st.updated_at is None else min(max(now - st.updated_at, 0.0), MAX_STEP_S)
        error = setpoint_c - room_c
        feed_forward = (
            s.feed_forward_w_per_k * max(setpoint_c - outside_c, 0.0)
            if outside_c is not None
            else 0.0
        )

        old_integral = st.integral_w
        proportional = feed_forward + s.kp_w_per_k * error
        integral = _clamp(
            old_integral + s.ki_w_per_kh * error * dt / 3600.0, -s.max_power_w, s.max_power_w
        )
        output, running, held = self._output(proportional + integral, now)
        # Anti-windup: while the output cannot follow (at max power, off, or held by a
        # minimum time) the integral must not keep growing in the direction of the error.
        saturated_up = output >= s.max_power_w or (held and output == 0.0)
        saturated_down = output == 0.0 and not held
        if (error > 0 and saturated_up) or (error < 0 and saturated_down):
            integral = old_integral
            output, running, held = self._output(proportional + integral, now)

        if running != st.running:
            st.switched_at = now
        st.integral_w, st.running, st.updated_at, st.output_w = integral, running, now, output
        return output

    def _output(self, demand_w: float, now: float) -> tuple[float, bool, bool]:
        """(watts, running, held by a minimum time) for a raw demand."""
        s, st = self.settings, self.state
        since = None if st.switched_at is None else now - st.switched_at
        if st.running:
            if demand_w > 0:
                return _clamp(demand_w, s.min_power_w, s.max_power_w), True, False
            if since is not None and since < s.min_run_s:
                return s.min_power_w, True, True
            return 0.0, False, False
        if demand_w >= max(s.min_power_w, 1e-9):
            if since is not None and since < s.min_off_s:
                return 0.0, False, True
            return _clamp(demand_w, s.min_power_w, s.max_power_w), True, False
        return 0.0, False, False


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
