"""The thermal twin's physics, its outside profiles and its power models."""

from __future__ import annotations

import itertools
import math
import time

import pytest

from heatcompute_node.hardware.twin import (
    CHIP_SENSOR,
    DAY_S,
    HOUR_S,
    FixedPower,
    ProcessCpuPower,
    RoomModel,
    RoomParams,
    TwinSource,
    constant,
    daily_sine,
    hourly,
)

PARAMS = RoomParams()  # C = 2.5 MJ/K, UA = 40 W/K
C, UA = PARAMS.heat_capacity_j_per_k, PARAMS.loss_w_per_k


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def analytic_room_c(start_c: float, power_w: float, outside_c: float, t_s: float) -> float:
    """The textbook solution of C·dT/dt = P − UA·(T − T_out), written out independently."""
    rise_limit = outside_c + power_w / UA - start_c
    return start_c + rise_limit * (1 - math.exp(-t_s * UA / C))


@pytest.mark.parametrize(("power_w", "hours"), [(200.0, 1.0), (120.0, 6.0), (200.0, 48.0)])
def test_known_power_raises_room_as_predicted(power_w: float, hours: float) -> None:
    start = RoomModel(params=PARAMS, room_c=18.0, chip_c=18.0)
    t_s = hours * HOUR_S
    expected_rise = analytic_room_c(18.0, power_w, 5.0, t_s) - 18.0

    one_step = start.step(power_w, t_s, 5.0)
    many = start
    for _ in range(int(t_s / 10)):
        many = many.step(power_w, 10.0, 5.0)

    assert one_step.room_c - 18.0 == pytest.approx(expected_rise, rel=0.02)
    assert many.room_c - 18.0 == pytest.approx(expected_rise, rel=0.02)
    # Exact, not just within 2 %: both step sizes are the same closed-form solution.
    assert one_step.room_c == pytest.approx(many.room_c, abs=1e-9)


def test_energy_balance() -> None:
    """Heat in = heat stored + heat lost, integrated over many small steps."""
    model = RoomModel(params=PARAMS, room_c=5.0, chip_c=5.0)
    power_w, dt, lost_j = 150.0, 5.0, 0.0
    for _ in range(int(10 * HOUR_S / dt)):
        after = model.step(power_w, dt, 5.0)
        lost_j += UA * ((model.room_c + after.room_c) / 2 - 5.0) * dt
        model = after
    stored_j = C * (model.room_c - 5.0)
    assert stored_j + lost_j == pytest.approx(power_w * 10 * HOUR_S, rel=1e-4)


def test_short_heating_is_power_over_capacity() -> None:
    """Over a minute the losses are negligible: ΔT = P·t/C."""
    model = RoomModel(params=PARAMS, room_c=5.0, chip_c=5.0).step(200.0, 60.0, 5.0)
    assert model.room_c - 5.0 == pytest.approx(200.0 * 60.0 / C, rel=0.01)


def test_steady_state() -> None:
    model = RoomModel(params=PARAMS, room_c=12.0, chip_c=12.0)
    assert model.steady_state_c(200.0, 3.0) == pytest.approx(8.0)
    settled = model.step(200.0, 50 * PARAMS.time_constant_s, 3.0)
    assert settled.room_c == pytest.approx(3.0 + 200.0 / UA)
    assert settled.chip_c == pytest.approx(settled.room_c + 200.0 * 0.25)


def test_zero_power_decays_toward_outside() -> None:
    model = RoomModel(params=PARAMS, room_c=21.0, chip_c=21.0)
    temperatures = []
    for _ in range(5 * 24):
        model = model.step(0.0, HOUR_S, 4.0)
        temperatures.append(model.room_c)
    assert all(a > b > 4.0 for a, b in itertools.pairwise(temperatures))
    assert model.room_c == pytest.approx(4.0, abs=0.01 * 17.0)
    after_tau = RoomModel(params=PARAMS, room_c=21.0).step(0.0, PARAMS.time_constant_s, 4.0)
    assert after_tau.room_c - 4.0 == pytest.approx(17.0 / math.e)


def test_negative_power_is_no_cooling() -> None:
    model = RoomModel(params=PARAMS, room_c=10.0, chip_c=10.0)
    assert model.step(-50.0, HOUR_S, 10.0).room_c == pytest.approx(10.0)


def test_chip_follows_power_with_its_own_time_constant() -> None:
    model = RoomModel(params=PARAMS, room_c=20.0, chip_c=20.0)
    tau = PARAMS.chip_time_constant_s
    after_tau = model.step(200.0, tau, 5.0)
    target = after_tau.room_c + 0.25 * 200.0
    assert after_tau.chip_c == pytest.approx(target + (20.0 - target) / math.e, rel=1e-6)
    hot = model
    for _ in range(100):
        hot = hot.step(200.0, 1.0, 5.0)
    assert hot.chip_c == pytest.approx(hot.room_c + 50.0, abs=0.5)
    cooled = hot.step(0.0, 10 * tau, 5.0)
    assert cooled.chip_c == pytest.approx(cooled.room_c, abs=0.01)


def test_step_is_pure() -> None:
    model = RoomModel(params=PARAMS, room_c=15.0, chip_c=15.0)
    assert model.step(100.0, 60.0, 0.0) == model.step(100.0, 60.0, 0.0)
    assert model.room_c == 15.0
    with pytest.raises(ValueError, match="negative"):
        model.step(100.0, -1.0, 0.0)


def test_invalid_params() -> None:
    with pytest.raises(ValueError, match="positive"):
        RoomParams(loss_w_per_k=0.0)


def test_outside_profiles() -> None:
    assert constant(3.5)(12345.0) == 3.5

    sine = daily_sine(-2.0, 8.0, coldest_hour=5.0)
    assert sine(5 * HOUR_S) == pytest.approx(-2.0)
    assert sine(17 * HOUR_S) == pytest.approx(8.0)
    assert sine(11 * HOUR_S) == pytest.approx(3.0)
    assert sine(5 * HOUR_S + 3 * DAY_S) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="below"):
        daily_sine(5.0, 1.0)

    record = hourly([0.0, 2.0, 6.0])
    assert record(0.0) == 0.0
    assert record(0.5 * HOUR_S) == pytest.approx(1.0)
    assert record(1.75 * HOUR_S) == pytest.approx(5.0)
    assert record(2.5 * HOUR_S) == pytest.approx(3.0)  # back toward the first value
    assert record(3 * HOUR_S) == pytest.approx(0.0)  # repeats
    with pytest.raises(ValueError, match="at least one"):
        hourly([])


def test_advance_follows_a_changing_outside() -> None:
    """Ten-minute sub-steps track a daily sine as well as one-second steps do."""
    sine = daily_sine(-5.0, 5.0)
    start = RoomModel(params=PARAMS, room_c=15.0, chip_c=15.0)
    coarse = start.advance(100.0, 2 * DAY_S, sine, 0.0)
    fine = start
    for second in range(int(2 * DAY_S / 30)):
        fine = fine.step(100.0, 30.0, sine(second * 30.0 + 15.0))
    assert coarse.room_c == pytest.approx(fine.room_c, abs=0.01)


def test_twin_source_simulates_a_week_quickly() -> None:
    clock = FakeClock()
    power = FixedPower(180.0)
    twin = TwinSource(power=power, room_c=16.0, outside=constant(2.0), clock=clock)
    assert twin.read().power_w is None  # no interval yet
    for _ in range(7 * 24):
        clock.now += HOUR_S
        reading = twin.read()
    assert reading.power_w == 180.0
    assert reading.room_temperature_c is not None
    assert reading.room_temperature_c == pytest.approx(
        analytic_room_c(16.0, 180.0, 2.0, 7 * DAY_S), rel=1e-9
    )
    assert reading.outside_temperature_c == 2.0
    assert reading.temperatures_c[CHIP_SENSOR] == pytest.approx(
        reading.room_temperature_c + 0.25 * 180.0
    )

    power.set(0.0)
    clock.now += 60.0
    assert twin.read().power_w == 0.0


def test_twin_time_scale() -> None:
    clock = FakeClock()
    twin = TwinSource(
        power=FixedPower(200.0), room_c=5.0, outside=constant(5.0), clock=clock, time_scale=60.0
    )
    clock.now += 60.0  # one wall minute = one simulated hour
    reading = twin.read()
    assert twin.sim_time_s == HOUR_S
    assert reading.room_temperature_c == pytest.approx(analytic_room_c(5.0, 200.0, 5.0, HOUR_S))


def test_process_cpu_power_from_utilisation() -> None:
    """Deterministic: a fake CPU-time counter, one of two CPUs busy = half way."""
    clock, cpu = FakeClock(), FakeClock()
    model = ProcessCpuPower(idle_w=20.0, max_w=120.0, clock=clock, cpu_time=cpu, cpu_count=2)
    clock.now += 10.0
    cpu.now += 10.0
    assert model.power_w(clock.now) == pytest.approx(70.0)
    clock.now += 10.0
    cpu.now += 30.0  # more than all CPUs: clamped
    assert model.power_w(clock.now) == pytest.approx(120.0)
    assert model.power_w(clock.now) == pytest.approx(120.0)  # no interval: last value


def test_process_cpu_power_sees_real_work() -> None:
    """Burn CPU in this process for 0.3 s: utilisation and power must rise above idle."""
    model = ProcessCpuPower(idle_w=15.0, max_w=200.0)
    deadline = time.monotonic() + 0.3
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    power = model.power_w(time.monotonic())
    assert spins > 0
    assert model.utilisation > 0
    assert 15.0 < power <= 200.0


def test_process_cpu_power_without_work_is_idle() -> None:
    """Ten simulated seconds pass while the process does (almost) nothing."""
    clock = FakeClock(100.0)
    model = ProcessCpuPower(idle_w=15.0, max_w=200.0, clock=clock)
    clock.now += 10.0
    assert model.power_w(clock.now) == pytest.approx(15.0, abs=0.5)


def test_twin_default_power_is_this_process() -> None:
    clock = FakeClock()
    twin = TwinSource(idle_power_w=10.0, max_power_w=110.0, clock=clock)
    assert isinstance(twin.power, ProcessCpuPower)
    clock.now += 5.0
    assert twin.read().power_w == pytest.approx(10.0, abs=1.0)
