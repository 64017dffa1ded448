"""The inner loop: measured power vs the heat target -> intensity of background work.

A PI controller with feedforward, run on every hardware sample (every 0.5 s by default):

    u = ff + Kp·e + I,   ff = (P_set − P_idle) / (P_max − P_idle),   e = (P_set − P) / span

The feedforward takes the node most of the way at once (the twin's power is linear in
CPU use, and so, roughly, is a real machine's); the integral removes what the model gets
wrong (a machine that never reaches its nameplate power, interactive work adding watts
of its own, which the integral then takes away from background work). Anti-windup by
conditional integration: the integral only moves while the output is not saturated in
the direction the error pushes, and is held while there is no background work to run or
safety blocks it, so the next job starts from what the loop had learnt.

The intensity u (0-1) becomes the engine's knobs (:func:`knobs_for`): threads and duty
cycle chosen so that the CPU share they give is u, so the loop stays near-linear.
Interactive requests are not governed at all: the engine serves them first, unthrottled.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Protocol


class BackgroundControl(Protocol):
    """What the governor needs of an engine: the knobs of its background work."""

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> object: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundKnobs:
    max_background: int
    """Background sequences at once (0 pauses background work)."""
    background_threads: int
    duty_cycle: float

    @property
    def paused(self) -> bool:
        """No background sequence may start."""
        return self.max_background == 0 or self.duty_cycle <= 0


PAUSED = BackgroundKnobs(max_background=0, background_threads=1, duty_cycle=0.0)
"""Safety: no new background sequences, and the running ones stop stepping at once."""


def idle_knobs(n_threads: int) -> BackgroundKnobs:
    """Nothing to heat with: no new background sequences; the ones running finish.

    Not :data:`PAUSED`: a sequence stopped mid-answer holds its caller (a background
    request over the API) and its KV cells for as long as there is no heat, and the
    seconds it needs to finish at full speed are not worth that.
    """
    return BackgroundKnobs(max_background=0, background_threads=n_threads, duty_cycle=1.0)


# Below this the engine would be woken for slivers of work that the idle floor swamps.
MIN_INTENSITY = 0.02
MAX_INTEGRAL_STEP = 0.5


def knobs_for(intensity: float, *, n_threads: int, max_parallel: int) -> BackgroundKnobs:
    """Knobs whose CPU share is ``intensity``: t threads at duty d with t·d/n = u.

    Fewest threads that can reach u, each at a duty cycle below 1: a thread that idles
    between steps heats less than one that computes, so duty is the fine control and
    threads the coarse one. Sequences stay at ``max_parallel``: batching more sequences
    costs the same watts per step and yields more tokens per joule.
    """
    if intensity < MIN_INTENSITY:
        return idle_knobs(n_threads)
    intensity = min(intensity, 1.0)
    threads = max(1, min(n_threads, math.ceil(intensity * n_threads - 1e-9)))
    duty = min(1.0, intensity * n_threads / threads)
    return BackgroundKnobs(
        max_background=max(1, max_parallel),
        background_threads=threads,
        duty_cycle=round(duty, 2),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorParams:
    idle_w: float
    """What the machine draws with no background work (the plant at u = 0)."""
    max_w: float
    """What it draws at full background intensity (the plant at u = 1), as configured."""
    kp: float = 0.3
    ki_per_s: float = 0.4
    """Tuned on the twin: with a plant gain anywhere from 0.6 to 1.3 of the model and a
    sample of delay, a step settles to 5 % within ~10 s without overshooting by more."""

    def __post_init__(self) -> None:
        if not 0 <= self.idle_w < self.max_w:
            raise ValueError("need 0 <= idle_w < max_w")


class Governor:
    """Turns (setpoint, measured power) into an intensity, once per sample."""

    def __init__(self, params: GovernorParams) -> None:
        self.params = params
        self.integral = 0.0
        self.intensity = 0.0
        self.setpoint_w = 0.0
        self.error_w: float | None = None

    def update(
        self,
        *,
        setpoint_w: float,
        power_w: float | None,
        dt_s: float,
        has_work: bool,
        blocked: bool = False,
    ) -> float:
        """Return the background intensity (0-1) for the next interval.

        ``has_work``: background work exists that may run now (else the output is 0 and
        the integral holds). ``blocked``: safety forbids background work.
        """
        params = self.params
        self.setpoint_w = setpoint_w
        span = params.max_w - params.idle_w
        if not has_work or blocked or setpoint_w <= params.idle_w:
            self.intensity = 0.0
            self.error_w = None
            return 0.0
        feedforward = min(1.0, (setpoint_w - params.idle_w) / span)
        if power_w is None:  # no meter: trust the model, learn nothing
            self.intensity = feedforward
            self.error_w = None
            return self.intensity
        error = (setpoint_w - power_w) / span
        self.error_w = setpoint_w - power_w
        unclamped = feedforward + params.kp * error + self.integral
        saturated_high = unclamped >= 1.0 and error > 0
        saturated_low = unclamped <= 0.0 and error < 0
        if not (saturated_high or saturated_low):
            # A long interval (a stalled loop, a coarse simulation) must not become one
            # huge integral step: with a sample of delay, more than ~0.5 oscillates.
            gain = min(params.ki_per_s * max(dt_s, 0.0), MAX_INTEGRAL_STEP)
            self.integral += gain * error
            # The integral corrects the model, it cannot be asked to exceed the range.
            self.integral = min(1.0, max(-1.0, self.integral))
        output = feedforward + params.kp * error + self.integral
        self.intensity = min(1.0, max(0.0, output))
        return self.intensity


class KnobApplier:
    """Sends knobs to the current engine only when they, or the engine, change.

    Each ``set_knobs`` wakes the engine thread (it ends a duty-cycle pause), so calling
    it every sample with the same values would distort the duty cycle it sets.
    """

    def __init__(self) -> None:
        self._engine: BackgroundControl | None = None
        self._knobs: BackgroundKnobs | None = None
        self.knobs: BackgroundKnobs = PAUSED

    def apply(self, engine: BackgroundControl | None, knobs: BackgroundKnobs) -> None:
        self.knobs = knobs
        if engine is None:
            self._engine, self._knobs = None, None
            return
        # By value: a runner may hand out a new, equal view of the same engines.
        if engine == self._engine and knobs == self._knobs:
            return
        engine.set_knobs(
            max_background=knobs.max_background,
            background_threads=knobs.background_threads,
            duty_cycle=knobs.duty_cycle,
        )
        self._engine, self._knobs = engine, knobs
