"""The PI controller alone: pure arithmetic on a simulated clock."""

from __future__ import annotations

import pytest

from custom_components.heatcompute.controller import (
    MAX_STEP_S,
    ControllerSettings,
    ControllerState,
    PIController,
)


def running(controller: PIController) -> bool:
    return controller.state.running


SETTINGS = ControllerSettings(
    kp_w_per_k=100.0,
    ki_w_per_kh=100.0,
    min_power_w=20.0,
    max_power_w=200.0,
    min_run_s=300.0,
    min_off_s=300.0,
)


def test_proportional_and_integral() -> None:
    controller = PIController(SETTINGS)
    # First call: no elapsed time, so only the proportional part.
    assert controller.update(setpoint_c=21.0, room_c=20.0, now=0.0) == 100.0
    # One hour at 1 K error adds 100 W of integral.
    assert controller.update(setpoint_c=21.0, room_c=20.0, now=3600.0) == pytest.approx(
        100.0 + 100.0 * MAX_STEP_S / 3600
    )


def test_anti_windup_at_max_power() -> None:
    """Hours at full power with a big error leave no integral to overshoot with."""
    controller = PIController(SETTINGS)
    for minute in range(600):
        assert controller.update(setpoint_c=21.0, room_c=16.0, now=60.0 * minute) == 200.0
    assert controller.state.integral_w == 0.0
    # At the set point the output drops at once instead of coasting on a wound-up integral.
    assert controller.update(setpoint_c=21.0, room_c=21.0, now=36_060.0) == 0.0


def test_anti_windup_when_off() -> None:
    """Too warm for hours: the integral does not sink so low that heating comes late."""
    controller = PIController(SETTINGS)
    for minute in range(600):
        assert controller.update(setpoint_c=21.0, room_c=23.0, now=60.0 * minute) == 0.0
    assert controller.state.integral_w == 0.0


def test_minimum_run_and_off_times() -> None:
    controller = PIController(SETTINGS)
    assert controller.update(setpoint_c=21.0, room_c=20.5, now=0.0) == 50.0
    assert running(controller)
    # Too warm a minute later, but the heater must run 5 minutes: it stays at min power.
    assert controller.update(setpoint_c=21.0, room_c=21.5, now=60.0) == 20.0
    assert controller.update(setpoint_c=21.0, room_c=21.5, now=301.0) == 0.0
    assert not running(controller)
    # Cold again at once, but it must stay off 5 minutes.
    assert controller.update(setpoint_c=21.0, room_c=20.0, now=360.0) == 0.0
    assert controller.update(setpoint_c=21.0, room_c=20.0, now=602.0) > 20.0


def test_band_between_zero_and_min_power() -> None:
    """Small demand: a stopped heater waits for min power, a running one holds it."""
    controller = PIController(SETTINGS)
    assert controller.update(setpoint_c=21.0, room_c=20.9, now=0.0) == 0.0  # 10 W < 20 W
    assert controller.update(setpoint_c=21.0, room_c=20.7, now=600.0) > 20.0
    assert controller.update(setpoint_c=21.0, room_c=20.95, now=1200.0) >= 20.0


def test_feed_forward_from_outside() -> None:
    controller = PIController(
        ControllerSettings(
            kp_w_per_k=0.0,
            ki_w_per_kh=0.0,
            min_power_w=0.0,
            max_power_w=500.0,
            feed_forward_w_per_k=10.0,
        )
    )
    assert controller.update(setpoint_c=21.0, room_c=21.0, now=0.0, outside_c=1.0) == 200.0
    assert controller.update(setpoint_c=21.0, room_c=21.0, now=1.0, outside_c=30.0) == 0.0


def test_stop_starts_the_off_time() -> None:
    controller = PIController(SETTINGS)
    controller.update(setpoint_c=21.0, room_c=20.0, now=0.0)
    controller.stop(now=100.0)
    assert controller.state == ControllerState(switched_at=100.0)
    assert controller.update(setpoint_c=21.0, room_c=20.0, now=200.0) == 0.0


def test_state_round_trip() -> None:
    state = ControllerState(
        integral_w=12.5, running=True, switched_at=5.0, updated_at=6.0, output_w=30.0
    )
    assert ControllerState.from_dict(state.as_dict()) == state
    assert ControllerState.from_dict({"integral_w": "junk"}) == ControllerState()


def test_time_going_backwards_or_long_gaps() -> None:
    controller = PIController(SETTINGS)
    controller.update(setpoint_c=21.0, room_c=20.0, now=1000.0)
    controller.update(setpoint_c=21.0, room_c=20.0, now=500.0)  # clock set back
    assert controller.state.integral_w == 0.0
    controller.update(setpoint_c=21.0, room_c=20.0, now=500.0 + 86_400.0)
    assert controller.state.integral_w == pytest.approx(100.0 * MAX_STEP_S / 3600)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_power_w": 300.0},
        {"kp_w_per_k": -1.0},
    ],
)
def test_settings_are_checked(kwargs: dict[str, float]) -> None:
    base = {
        "kp_w_per_k": 1.0,
        "ki_w_per_kh": 1.0,
        "min_power_w": 0.0,
        "max_power_w": 200.0,
    }
    with pytest.raises(ValueError):  # noqa: PT011
        ControllerSettings(**{**base, **kwargs})
