"""The one small interface every hardware source implements.

A source answers two questions, as cheaply as a sysfs read: how much power is the
machine drawing, and how hot are its chips. The simulated thermal twin answers the same
questions and also knows the room it heats.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareReading:
    """One sample of everything the hardware can tell."""

    power_w: float | None
    """Electrical power drawn, in W; None when no source can measure it."""
    temperatures_c: dict[str, float] = field(default_factory=dict)
    """Chip temperatures in °C by sensor label (e.g. ``package-0``, ``gpu-0``)."""
    room_temperature_c: float | None = None
    """Only the twin knows the room it heats; real sources leave this None."""
    outside_temperature_c: float | None = None

    @property
    def max_chip_temperature_c(self) -> float | None:
        """The hottest chip, which is what safety limits look at."""
        return max(self.temperatures_c.values(), default=None)


class HardwareSource(ABC):
    """A source of power and temperature readings."""

    name: str

    @abstractmethod
    def read(self) -> HardwareReading:
        """Take one reading. Must not block for long: it runs on the event loop."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release handles (NVML, files)."""
