"""The inner loop on the twin: steps settle, interactive load is made room for, no windup.

The plant is the twin (TwinSource with its exact RC room) heated by a simulated engine
whose CPU share follows the knobs the governor sets, measured the way ProcessCpuPower
measures it: the average over the last sample interval (one sample of delay), with
noise. Time is virtual, so a minute of control runs in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import random

import pytest

from heatcompute_node.hardware.twin import FixedPower, TwinSource
from heatcompute_node.heat.governor import (
    PAUSED,
    BackgroundKnobs,
    Governor,
    GovernorParams,
    KnobApplier,
    knobs_for,
)

from .fake_runner import RecordingEngine

IDLE_W, MAX_W = 15.0, 200.0
DT_S = 0.5
N_THREADS = 2


@dataclass
class Plant:
    """A machine whose background work draws what its knobs allow, times ``gain``."""

    gain: float = 1.0
    interactive_w: float = 0.0
    noise_w: float = 2.0
    now: float = 0.0
    knobs: BackgroundKnobs = PAUSED
    power: FixedPower = field(default_factory=FixedPower)
    rng: random.Random = field(default_factory=lambda: random.Random(4))

    def __post_init__(self) -> None:
        self.twin = TwinSource(power=self.power, clock=lambda: self.now)

    def advance(self) -> float:
        """Run one interval with the current knobs; return the power measured over it."""
        share = 0.0
        if not self.knobs.paused:
            share = self.knobs.background_threads * self.knobs.duty_cycle / N_THREADS
        drawn = IDLE_W + (MAX_W - IDLE_W) * min(1.0, share * self.gain) + self.interactive_w
        self.power.set(drawn + self.rng.gauss(0.0, self.noise_w))
        self.now += DT_S
        reading = self.twin.read()
        assert reading.power_w is not None
        return reading.power_w


def run(governor: Governor, plant: Plant, setpoint_w: float, seconds: float) -> list[float]:
    powers = []
    power: float | None = None
    for _ in range(int(seconds / DT_S)):
        intensity = governor.update(setpoint_w=setpoint_w, power_w=power, dt_s=DT_S, has_work=True)
        plant.knobs = knobs_for(intensity, n_threads=N_THREADS, max_parallel=4)
        power = plant.advance()
        powers.append(power)
    return powers


def settling_time_s(powers: list[float], target_w: float, band: float = 0.05) -> float:
    """Time after which the power stays within ``band`` of the target.

    Judged on a 2 s moving average, as a power meter (and Home Assistant) shows it: the
    simulated meter noise alone would put single samples outside a 5 % band.
    """
    window = int(2.0 / DT_S)
    smooth = [
        sum(powers[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(powers))
    ]
    outside = [i for i, p in enumerate(smooth) if abs(p - target_w) > band * target_w]
    return 0.0 if not outside else (outside[-1] + 1) * DT_S


def new_governor() -> Governor:
    return Governor(GovernorParams(idle_w=IDLE_W, max_w=MAX_W))


@pytest.mark.parametrize("gain", [0.6, 0.8, 1.0, 1.3])
@pytest.mark.parametrize(("start_w", "target_w"), [(0.0, 120.0), (120.0, 60.0), (60.0, 180.0)])
def test_a_step_settles_within_30_s_to_5_percent(
    gain: float, start_w: float, target_w: float
) -> None:
    """The issue's criterion, for plants the model over- and underestimates."""
    if target_w > IDLE_W + (MAX_W - IDLE_W) * gain:
        pytest.skip("the plant cannot reach this target")
    governor, plant = new_governor(), Plant(gain=gain)
    if start_w:
        run(governor, plant, start_w, 60)
    powers = run(governor, plant, target_w, 60)
    assert settling_time_s(powers, target_w) <= 30.0
    tail = powers[-40:]
    assert abs(sum(tail) / len(tail) - target_w) < 0.02 * target_w
    # The twin's chip heats from the power actually drawn (R_th = 0.25 K/W).
    model = plant.twin.model
    assert model.chip_c - model.room_c == pytest.approx(0.25 * target_w, rel=0.1)


def test_interactive_load_takes_power_from_background_work() -> None:
    governor, plant = new_governor(), Plant()
    run(governor, plant, 120.0, 30)
    before = governor.intensity
    plant.interactive_w = 40.0  # someone asks the assistant something long
    powers = run(governor, plant, 120.0, 30)
    assert governor.intensity < before - 0.15
    assert settling_time_s(powers, 120.0) <= 30.0


def test_no_windup_when_the_target_is_out_of_reach() -> None:
    """Saturated at full intensity for a long time, then a lower target: quick recovery."""
    governor, plant = new_governor(), Plant(gain=0.6)
    run(governor, plant, 200.0, 600)
    assert governor.intensity == 1.0
    assert governor.integral <= 1.0
    powers = run(governor, plant, 80.0, 60)
    assert settling_time_s(powers, 80.0) <= 30.0


def test_no_work_or_blocked_gives_zero_and_holds_what_was_learnt() -> None:
    governor, plant = new_governor(), Plant(gain=0.7)
    run(governor, plant, 120.0, 60)
    learnt = governor.integral
    assert learnt > 0.1  # the plant is weaker than the model; the integral knows
    for kwargs in ({"has_work": False}, {"has_work": True, "blocked": True}):
        assert governor.update(setpoint_w=120.0, power_w=IDLE_W, dt_s=DT_S, **kwargs) == 0.0
    assert governor.integral == learnt
    # A setpoint at or below the idle floor needs no background work at all.
    assert governor.update(setpoint_w=IDLE_W, power_w=IDLE_W, dt_s=DT_S, has_work=True) == 0.0


def test_without_a_meter_the_feedforward_alone_runs() -> None:
    governor = new_governor()
    intensity = governor.update(setpoint_w=107.5, power_w=None, dt_s=DT_S, has_work=True)
    assert intensity == pytest.approx(0.5)


@pytest.mark.parametrize("intensity", [0.05, 0.3, 0.5, 0.51, 0.75, 1.0])
def test_knobs_give_the_cpu_share_asked_for(intensity: float) -> None:
    knobs = knobs_for(intensity, n_threads=4, max_parallel=8)
    assert knobs.max_background == 8
    assert 0 < knobs.duty_cycle <= 1
    assert knobs.background_threads * knobs.duty_cycle / 4 == pytest.approx(intensity, abs=0.01)


def test_tiny_intensity_admits_nothing_new_but_lets_running_work_finish() -> None:
    idle = knobs_for(0.0, n_threads=2, max_parallel=4)
    assert idle == knobs_for(0.01, n_threads=2, max_parallel=4)
    assert idle.paused
    assert (idle.max_background, idle.duty_cycle) == (0, 1.0)
    assert PAUSED.duty_cycle == 0.0  # only safety stops running sequences mid-step


def test_knobs_reach_the_engine_only_when_they_change() -> None:
    applier, engine = KnobApplier(), RecordingEngine()
    knobs = knobs_for(0.5, n_threads=2, max_parallel=4)
    applier.apply(engine, knobs)
    applier.apply(engine, knobs)
    assert engine.calls == [{"max_background": 4, "background_threads": 1, "duty_cycle": 1.0}]
    applier.apply(engine, PAUSED)
    assert engine.knobs == {"max_background": 0, "background_threads": 1, "duty_cycle": 0.0}
    other = RecordingEngine()  # the model was swapped: the new engine gets the knobs
    applier.apply(other, PAUSED)
    assert len(other.calls) == 1
    applier.apply(None, PAUSED)
    assert applier.knobs == PAUSED
