"""The simulated thermal twin: a room heated by the machine, and the machine's chip.

The room is a first-order RC model: one heat capacity C (J/K) losing heat to the
outside through one conductance UA (W/K), heated by the machine's power P:

    C·dT/dt = P − UA·(T − T_out)

For P and T_out constant over a step the solution is exact:

    T_eq = T_out + P/UA,    T(t) = T_eq + (T0 − T_eq)·exp(−t·UA/C)

so a step of a second and a step of a day are equally right, and a benchmark can run a
simulated week in moments. The chip sits on top of the room: it approaches
room + R_th·P with its own, much shorter, time constant; that is what safety limits see.

The live :class:`TwinSource` takes its power from a pluggable model. The default,
:class:`ProcessCpuPower`, turns the CPU time this very process spends (llama.cpp's
threads included: they run in-process) into watts, so the twin's heat comes from the
work the node actually runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
import math
import os
import time
from typing import Protocol

from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.common import Clock
from heatcompute_node.hardware.helpers import node_cpu_time

DAY_S = 86_400.0
HOUR_S = 3_600.0

type OutsideProfile = Callable[[float], float]
"""Outside temperature in °C at a simulated time in s; t = 0 is midnight of day one."""


def constant(temperature_c: float) -> OutsideProfile:
    """The same outside temperature all the time (tests, steady-state checks)."""
    return lambda _t: temperature_c


def daily_sine(min_c: float, max_c: float, *, coldest_hour: float = 5.0) -> OutsideProfile:
    """A sine day: coldest around dawn (5 h by default), warmest twelve hours later."""
    if max_c < min_c:
        raise ValueError("max_c must not be below min_c")
    mean, amplitude = (min_c + max_c) / 2, (max_c - min_c) / 2

    def profile(t_s: float) -> float:
        phase = 2 * math.pi * (t_s / HOUR_S - coldest_hour) / 24.0
        return mean - amplitude * math.cos(phase)

    return profile


def hourly(values_c: Sequence[float]) -> OutsideProfile:
    """Hourly values (a weather record), linearly interpolated, repeating after the last.

    Interpolation rather than steps, because a step in T_out would show up as a kink in
    the room's temperature that no real weather makes.
    """
    values = tuple(float(value) for value in values_c)
    if not values:
        raise ValueError("hourly needs at least one value")

    def profile(t_s: float) -> float:
        position = (t_s / HOUR_S) % len(values)
        index = int(position)
        fraction = position - index
        following = values[(index + 1) % len(values)]
        return values[index] + (following - values[index]) * fraction

    return profile


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomParams:
    """A room and the chip that heats it.

    The defaults describe a 20 m² room (50 m³) with furniture in an older, moderately
    insulated house:
    - C = 2.5 MJ/K: the air is only ~60 kJ/K (50 m³ × 1.2 kJ/(m³·K)); furniture
      (~300 kg × 1.5 kJ/(kg·K) ≈ 0.45 MJ/K) and the first few centimetres of plaster
      and walls that follow the air within hours (~2 MJ/K) make up the rest.
    - UA = 40 W/K: outer wall ~12 m² at U ≈ 1 W/(m²·K), a window 3 m² at U ≈ 2.8,
      ventilation 0.7 air changes/h (≈ 12 W/K), and leakage to colder rooms.
    That gives a time constant C/UA ≈ 17 h, and 200 W hold the room 5 K above outside.
    - R_th = 0.25 K/W, τ_chip = 20 s: a tower cooler; at 200 W the chip runs 50 K above
      the room and settles within a minute.
    """

    heat_capacity_j_per_k: float = 2.5e6
    loss_w_per_k: float = 40.0
    chip_resistance_k_per_w: float = 0.25
    chip_time_constant_s: float = 20.0

    def __post_init__(self) -> None:
        if min(self.heat_capacity_j_per_k, self.loss_w_per_k, self.chip_time_constant_s) <= 0:
            raise ValueError("heat capacity, loss and chip time constant must be positive")
        if self.chip_resistance_k_per_w < 0:
            raise ValueError("chip thermal resistance must not be negative")

    @property
    def time_constant_s(self) -> float:
        """How fast the room follows a change: C/UA."""
        return self.heat_capacity_j_per_k / self.loss_w_per_k


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomModel:
    """The room's and the chip's temperature. Immutable: :meth:`step` returns a new one."""

    params: RoomParams = field(default_factory=RoomParams)
    room_c: float = 19.0
    chip_c: float = 19.0

    def steady_state_c(self, power_w: float, outside_c: float) -> float:
        """Where the room ends up if this power and outside temperature last forever."""
        return outside_c + max(power_w, 0.0) / self.params.loss_w_per_k

    def step(self, power_w: float, dt_s: float, outside_c: float) -> RoomModel:
        """The model after ``dt_s`` seconds at a constant power and outside temperature.

        Pure and exact for any ``dt_s``. Negative power is treated as zero: a computer
        cannot cool a room.
        """
        if dt_s < 0:
            raise ValueError(f"dt_s must not be negative, got {dt_s}")
        params = self.params
        power_w = max(power_w, 0.0)
        room_eq = self.steady_state_c(power_w, outside_c)
        room = room_eq + (self.room_c - room_eq) * math.exp(-dt_s / params.time_constant_s)
        # The chip's target moves with the room, but the room is ~3000x slower, so
        # aiming at the room's end-of-step temperature is exact for short steps and for
        # long ones (where the chip has long settled) alike.
        chip_eq = room + params.chip_resistance_k_per_w * power_w
        chip = chip_eq + (self.chip_c - chip_eq) * math.exp(-dt_s / params.chip_time_constant_s)
        return replace(self, room_c=room, chip_c=chip)

    def advance(
        self,
        power_w: float,
        dt_s: float,
        outside: OutsideProfile,
        start_s: float,
        *,
        max_step_s: float = 600.0,
    ) -> RoomModel:
        """Like :meth:`step`, with an outside temperature that changes over the interval.

        The interval is cut into steps of at most ``max_step_s``, each at the outside
        temperature of its midpoint: 10 min steps follow a daily sine to ~0.01 K.
        """
        steps = max(1, math.ceil(dt_s / max_step_s))
        model, step_s = self, dt_s / steps
        for index in range(steps):
            model = model.step(power_w, step_s, outside(start_s + (index + 0.5) * step_s))
        return model


class PowerModel(Protocol):
    """Where the twin's heater power comes from."""

    def power_w(self, now: float) -> float:
        """Average power since the previous call, at clock time ``now``."""
        ...


class FixedPower:
    """A commanded power: tests and benchmarks set it, the twin heats with it."""

    def __init__(self, power_w: float = 0.0) -> None:
        self.value_w = power_w

    def set(self, power_w: float) -> None:
        self.value_w = power_w

    def power_w(self, now: float) -> float:
        return self.value_w


class ProcessCpuPower:
    """idle_w + (max_w − idle_w) × the share of the machine's CPUs this process used.

    CPU time comes from ``time.process_time`` (all threads of this process, user and
    system) plus the node's helper processes (helpers.py), so inference threads and the
    work done for a fleet lead count, and unrelated programs on the machine do not.
    """

    def __init__(
        self,
        *,
        idle_w: float,
        max_w: float,
        clock: Clock = time.monotonic,
        cpu_time: Clock = node_cpu_time,
        cpu_count: int | None = None,
    ) -> None:
        if not 0 <= idle_w <= max_w:
            raise ValueError("need 0 <= idle_w <= max_w")
        self.idle_w, self.max_w = idle_w, max_w
        self._cpu_time = cpu_time
        # process_cpu_count honours CPU affinity (a container pinned to 2 of 16 cores).
        self.cpu_count = cpu_count or os.process_cpu_count() or 1
        self._last_wall, self._last_cpu = clock(), cpu_time()
        self.utilisation = 0.0
        """Share (0-1) of all CPUs this process used over the last interval."""

    def update(self, now: float) -> float:
        """Measure the utilisation since the previous call and return it."""
        cpu = self._cpu_time()
        wall = now - self._last_wall
        if wall > 0:
            used = (cpu - self._last_cpu) / (wall * self.cpu_count)
            self.utilisation = min(max(used, 0.0), 1.0)
            self._last_wall, self._last_cpu = now, cpu
        return self.utilisation

    def power_w(self, now: float) -> float:
        return self.idle_w + (self.max_w - self.idle_w) * self.update(now)


CHIP_SENSOR = "twin/chip"


class TwinSource(HardwareSource):
    """Simulated hardware: power from a power model, heat into a simulated room."""

    name = "twin"

    def __init__(
        self,
        *,
        power: PowerModel | None = None,
        idle_power_w: float = 15.0,
        max_power_w: float = 200.0,
        params: RoomParams | None = None,
        room_c: float = 19.0,
        outside: OutsideProfile | None = None,
        clock: Clock = time.monotonic,
        time_scale: float = 1.0,
        start_s: float = 0.0,
    ) -> None:
        """``time_scale`` simulated seconds pass per clock second (a demo's fast room);
        ``start_s`` is the simulated time of day the twin starts at.
        """
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.power = power or ProcessCpuPower(idle_w=idle_power_w, max_w=max_power_w, clock=clock)
        self.outside = outside or constant(5.0)
        self.model = RoomModel(params=params or RoomParams(), room_c=room_c, chip_c=room_c)
        self._clock, self._time_scale = clock, time_scale
        self._last = clock()
        self.sim_time_s = start_s
        self.power_w: float | None = None

    def read(self) -> HardwareReading:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._last = now
            power_w = self.power.power_w(now)
            dt_s = elapsed * self._time_scale
            self.model = self.model.advance(power_w, dt_s, self.outside, self.sim_time_s)
            self.sim_time_s += dt_s
            self.power_w = power_w
        return HardwareReading(
            power_w=self.power_w,
            temperatures_c={CHIP_SENSOR: self.model.chip_c},
            room_temperature_c=self.model.room_c,
            outside_temperature_c=self.outside(self.sim_time_s),
        )
