"""Safety trips: each fires and releases exactly as specified, with an event each time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heatcompute_node.hardware.base import HardwareReading
from heatcompute_node.heat.safety import SafetyEvent, SafetyLimits, SafetyMonitor
from heatcompute_node.heat.target import HeatTarget

HEAT = HeatTarget(mode="heat", target_w=100.0, updated_at=datetime(2026, 1, 1, tzinfo=UTC))
LIMITS = SafetyLimits(chip_limit_c=90.0, chip_hysteresis_c=10.0, watchdog_s=600.0, safe_w=0.0)


class Harness:
    def __init__(self, limits: SafetyLimits = LIMITS) -> None:
        self.events: list[SafetyEvent] = []
        self.monitor = SafetyMonitor(limits, on_event=self.events.append)
        self.now = 0.0
        self.refreshed_at = 0.0

    def observe(
        self,
        *,
        chip_c: float | None = 60.0,
        power_w: float | None = 100.0,
        heat: HeatTarget = HEAT,
        cap_w: float = 150.0,
        dt_s: float = 0.5,
    ) -> bool:
        self.now += dt_s
        temps = {} if chip_c is None else {"package-0": chip_c}
        state = self.monitor.observe(
            HardwareReading(power_w=power_w, temperatures_c=temps),
            heat=heat,
            heat_refreshed_at=self.refreshed_at,
            max_power_w=cap_w,
            now=self.now,
        )
        return state.background_blocked

    def kinds(self) -> list[tuple[str, bool]]:
        return [(event.kind, event.active) for event in self.events]


def test_chip_temperature_fires_at_the_limit_and_releases_below_the_band() -> None:
    h = Harness()
    assert not h.observe(chip_c=89.9)
    assert h.observe(chip_c=90.0)
    assert h.kinds() == [("chip_temperature", True)]
    # Inside the hysteresis band: still tripped, no new events.
    for chip_c in (95.0, 85.0, 80.1):
        assert h.observe(chip_c=chip_c)
    # A missing sensor reading doesn't release a trip.
    assert h.observe(chip_c=None)
    assert not h.observe(chip_c=80.0)
    assert h.kinds() == [("chip_temperature", True), ("chip_temperature", False)]
    status = h.monitor.as_dict()
    assert status["ok"] is True
    assert status["trips"]["chip_temperature"] == {"active": False, "count": 1, "since": None}
    assert h.events[0].as_dict()["limit"] == 90.0
    assert "90" in h.events[0].message


def test_max_power_needs_consecutive_samples_and_a_quiet_hold_to_release() -> None:
    h = Harness()
    # Single spikes over the cap (+5 % margin) are meter noise: no trip.
    assert not h.observe(power_w=170.0)
    assert not h.observe(power_w=140.0)
    assert not h.observe(power_w=157.0)  # within the margin
    for _ in range(2):
        assert not h.observe(power_w=170.0)
    assert h.observe(power_w=170.0)
    assert h.kinds() == [("max_power", True)]
    # Below 90 % of the cap, but not yet for the 10 s hold.
    for _ in range(19):
        assert h.observe(power_w=100.0)
    # Going back above 90 % restarts the hold.
    assert h.observe(power_w=140.0)
    # The hold starts at the first quiet sample and ends 10 s (20 samples) later.
    for _ in range(20):
        assert h.observe(power_w=100.0)
    assert not h.observe(power_w=100.0)
    assert h.kinds() == [("max_power", True), ("max_power", False)]
    assert h.monitor.trip_counts()["max_power"] == 1


def test_max_power_follows_a_lowered_cap() -> None:
    h = Harness()
    for _ in range(3):
        h.observe(power_w=100.0, cap_w=60.0)
    assert h.monitor.state.background_blocked
    assert "max_power" in h.monitor.state.active


def test_watchdog_falls_back_to_the_safe_level_and_releases_on_refresh() -> None:
    h = Harness(SafetyLimits(watchdog_s=600.0, safe_w=40.0))
    h.observe(dt_s=599.0)
    assert h.monitor.state.heat == HEAT
    assert not h.observe(dt_s=1.0)  # the watchdog doesn't block background work...
    state = h.monitor.state
    assert state.heat.target_w == 40.0  # ... it lowers the heat target to the safe level
    assert state.heat.wanted
    assert h.kinds() == [("watchdog", True)]
    h.observe(dt_s=3600.0)
    assert len(h.events) == 1
    h.refreshed_at = h.now  # Home Assistant PUTs the heat target again
    h.observe()
    assert h.monitor.state.heat == HEAT
    assert h.kinds() == [("watchdog", True), ("watchdog", False)]


def test_watchdog_safe_level_zero_means_no_heat_and_off_never_trips() -> None:
    h = Harness()
    h.observe(dt_s=601.0)
    assert not h.monitor.state.heat.wanted
    h2 = Harness()
    h2.observe(heat=HeatTarget(mode="off", target_w=100.0), dt_s=10_000.0)
    assert h2.events == []


@pytest.mark.parametrize("kind", ["chip_temperature", "max_power"])
def test_each_trip_shows_in_the_status_while_active(kind: str) -> None:
    h = Harness()
    for _ in range(3):
        h.observe(
            chip_c=95.0 if kind == "chip_temperature" else 60.0,
            power_w=300.0 if kind == "max_power" else 50.0,
        )
    status = h.monitor.as_dict()
    assert status["ok"] is False
    assert status["background_blocked"] is True
    assert status["trips"][kind]["active"] is True
    assert status["trips"][kind]["since"] is not None
