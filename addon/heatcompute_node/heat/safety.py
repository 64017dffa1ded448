"""Safety: limits the node enforces on its own, whatever Home Assistant says or doesn't.

Three trips, each with a clear fire and release rule:

- ``chip_temperature``: the hottest chip reaches the limit -> background work stops;
  it resumes once the chip has cooled ``hysteresis`` below the limit (a band, so a chip
  hovering at the limit doesn't switch work on and off every sample).
- ``max_power``: measured power stays above the power cap (plus a small margin for meter
  noise) for ``power_trip_samples`` samples -> background work stops; it resumes after
  power has stayed below ``power_release_ratio`` of the cap for ``power_hold_s``. The
  governor never aims above the cap, so this only fires when the machine draws more than
  its model of itself predicts; the hold keeps it from oscillating.
- ``watchdog``: heat is wanted but Home Assistant has not refreshed the heat target for
  ``watchdog_s`` -> the node heats at the configured safe level instead (0 W by default:
  a heater whose controller went silent must not keep heating forever). It releases on
  the next refresh.

Interactive requests are never stopped by a trip: they are short, people wait on them,
and the chip's own thermal throttling still protects it. Deadline-forced jobs are: no
deadline is worth a chip at its limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
import logging
from typing import Any, Literal

from ..hardware.base import HardwareReading
from .target import HeatTarget

_LOGGER = logging.getLogger(__name__)

type TripKind = Literal["chip_temperature", "max_power", "watchdog"]
TRIP_KINDS: tuple[TripKind, ...] = ("chip_temperature", "max_power", "watchdog")


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyLimits:
    chip_limit_c: float = 90.0
    chip_hysteresis_c: float = 10.0
    watchdog_s: float = 900.0
    safe_w: float = 0.0
    power_margin_ratio: float = 0.05
    """Power may exceed the cap by this share before it counts (meter noise, rounding)."""
    power_trip_samples: int = 3
    power_release_ratio: float = 0.9
    power_hold_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyEvent:
    """A trip firing (``active``) or releasing; published as a ``safety`` event."""

    kind: TripKind
    active: bool
    value: float | None
    limit: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "active": self.active,
            "value": None if self.value is None else round(self.value, 2),
            "limit": self.limit,
            "message": self.message,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


@dataclass(slots=True)
class _Trip:
    active: bool = False
    count: int = 0
    since: float | None = None
    """Monotonic time the trip fired (None while released)."""
    since_wall: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyState:
    """What the rest of the node must obey after one observation."""

    background_blocked: bool
    heat: HeatTarget
    """The heat target to aim for: Home Assistant's, or the watchdog's safe level."""
    active: frozenset[TripKind] = field(default_factory=frozenset)


class SafetyMonitor:
    """Watches every hardware sample; fires and releases trips; always on."""

    def __init__(
        self,
        limits: SafetyLimits,
        *,
        on_event: Callable[[SafetyEvent], None] | None = None,
    ) -> None:
        self.limits = limits
        self._on_event = on_event
        self._trips: dict[TripKind, _Trip] = {kind: _Trip() for kind in TRIP_KINDS}
        self._over_power_samples = 0
        self._below_power_since: float | None = None
        self.state = SafetyState(background_blocked=False, heat=HeatTarget())

    def observe(
        self,
        reading: HardwareReading,
        *,
        heat: HeatTarget,
        heat_refreshed_at: float,
        max_power_w: float,
        now: float,
    ) -> SafetyState:
        """Update every trip from one sample and return what must be obeyed now."""
        self._check_chip(reading.max_chip_temperature_c, now)
        self._check_power(reading.power_w, max_power_w, now)
        self._check_watchdog(heat, now - heat_refreshed_at, now)
        effective = heat
        if self._trips["watchdog"].active:
            safe = self.limits.safe_w
            effective = HeatTarget(
                mode="heat" if safe > 0 else "off", target_w=safe, updated_at=heat.updated_at
            )
        active = frozenset(kind for kind, trip in self._trips.items() if trip.active)
        self.state = SafetyState(
            background_blocked=bool(active & {"chip_temperature", "max_power"}),
            heat=effective,
            active=active,
        )
        return self.state

    # --- the three trips ----------------------------------------------------------------

    def _check_chip(self, chip_c: float | None, now: float) -> None:
        limits = self.limits
        trip = self._trips["chip_temperature"]
        if chip_c is None:
            return  # no sensor: nothing to judge by; a trip in force stays until it cools
        if not trip.active and chip_c >= limits.chip_limit_c:
            self._fire(
                "chip_temperature",
                now,
                chip_c,
                limits.chip_limit_c,
                f"chip at {chip_c:.1f} °C, limit {limits.chip_limit_c:g} °C: background paused",
            )
        elif trip.active and chip_c <= limits.chip_limit_c - limits.chip_hysteresis_c:
            self._release(
                "chip_temperature",
                chip_c,
                limits.chip_limit_c,
                f"chip cooled to {chip_c:.1f} °C: background may run again",
            )

    def _check_power(self, power_w: float | None, cap_w: float, now: float) -> None:
        limits = self.limits
        trip = self._trips["max_power"]
        if power_w is None:
            return
        if power_w > cap_w * (1 + limits.power_margin_ratio):
            self._over_power_samples += 1
        else:
            self._over_power_samples = 0
        if not trip.active:
            if self._over_power_samples >= limits.power_trip_samples:
                self._below_power_since = None
                self._fire(
                    "max_power",
                    now,
                    power_w,
                    cap_w,
                    f"drawing {power_w:.0f} W over the {cap_w:g} W cap: background paused",
                )
            return
        if power_w > cap_w * limits.power_release_ratio:
            self._below_power_since = None
            return
        if self._below_power_since is None:
            self._below_power_since = now
        if now - self._below_power_since >= limits.power_hold_s:
            self._below_power_since = None
            self._release(
                "max_power", power_w, cap_w, f"power back to {power_w:.0f} W: background resumes"
            )

    def _check_watchdog(self, heat: HeatTarget, silent_s: float, now: float) -> None:
        limits = self.limits
        trip = self._trips["watchdog"]
        # A stale "off" is already safe: only a stale demand for heat trips the watchdog.
        stale = heat.wanted and silent_s >= limits.watchdog_s
        if stale and not trip.active:
            self._fire(
                "watchdog",
                now,
                silent_s,
                limits.watchdog_s,
                f"no heat target from Home Assistant for {silent_s / 60:.0f} min: "
                f"heating at the safe level of {limits.safe_w:g} W",
            )
        elif not stale and trip.active:
            self._release(
                "watchdog", silent_s, limits.watchdog_s, "heat target refreshed: watchdog released"
            )

    # --- bookkeeping ----------------------------------------------------------------------

    def _fire(self, kind: TripKind, now: float, value: float, limit: float, message: str) -> None:
        trip = self._trips[kind]
        trip.active = True
        trip.count += 1
        trip.since = now
        trip.since_wall = datetime.now(UTC).isoformat(timespec="seconds")
        _LOGGER.warning("safety trip %s: %s", kind, message)
        self._emit(SafetyEvent(kind=kind, active=True, value=value, limit=limit, message=message))

    def _release(self, kind: TripKind, value: float, limit: float, message: str) -> None:
        trip = self._trips[kind]
        trip.active = False
        trip.since = None
        trip.since_wall = None
        _LOGGER.warning("safety trip %s released: %s", kind, message)
        self._emit(SafetyEvent(kind=kind, active=False, value=value, limit=limit, message=message))

    def _emit(self, event: SafetyEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def trip_counts(self) -> dict[TripKind, int]:
        return {kind: trip.count for kind, trip in self._trips.items()}

    def snapshot(self) -> SafetySnapshot:
        return SafetySnapshot(
            limits=self.limits,
            background_blocked=self.state.background_blocked,
            trips=tuple(
                TripSnapshot(kind=kind, active=trip.active, count=trip.count, since=trip.since_wall)
                for kind, trip in self._trips.items()
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``safety`` part of the node's status."""
        return self.snapshot().as_dict()


@dataclass(frozen=True, slots=True, kw_only=True)
class TripSnapshot:
    kind: TripKind
    active: bool
    count: int
    since: str | None
    """When it fired (ISO time), None while released."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetySnapshot:
    limits: SafetyLimits
    background_blocked: bool
    trips: tuple[TripSnapshot, ...]

    @property
    def ok(self) -> bool:
        return not any(trip.active for trip in self.trips)

    def as_dict(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "ok": self.ok,
            "background_blocked": self.background_blocked,
            "trips": {
                trip.kind: {"active": trip.active, "count": trip.count, "since": trip.since}
                for trip in self.trips
            },
            "chip_limit_c": limits.chip_limit_c,
            "chip_hysteresis_c": limits.chip_hysteresis_c,
            "watchdog_s": limits.watchdog_s,
            "watchdog_safe_w": limits.safe_w,
        }
