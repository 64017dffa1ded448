"""Choose the hardware source: every real sensor found, or the simulated twin.

"auto" combines what the machine offers into one composite source: power from RAPL
(CPU) and NVML (NVIDIA GPUs) summed, or hwmon power channels when RAPL is absent;
temperatures from hwmon, thermal zones and NVML merged. Without any readable power the
heat governor would run blind, so the twin takes over, and the log says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import logging
from pathlib import Path
import time
from typing import Literal

from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.common import Clock, SourceUnavailable
from heatcompute_node.hardware.hwmon import HwmonSource, ThermalZoneSource
from heatcompute_node.hardware.nvml import NvmlSource
from heatcompute_node.hardware.rapl import RaplSource
from heatcompute_node.hardware.twin import TwinSource

_LOGGER = logging.getLogger(__name__)


class CompositeSource(HardwareSource):
    """Several real sources read as one; named by its parts (``rapl+hwmon+thermal``)."""

    def __init__(
        self,
        parts: Sequence[HardwareSource],
        *,
        power_parts: Sequence[HardwareSource],
    ) -> None:
        """``power_parts`` (a subset of ``parts``) are the ones whose power is summed."""
        if not parts or any(part not in parts for part in power_parts):
            raise ValueError("power_parts must be a non-empty subset of parts")
        self.parts = tuple(parts)
        self.power_parts = tuple(power_parts)
        self.name = "+".join(part.name for part in self.parts)

    def read(self) -> HardwareReading:
        readings = [(part, part.read()) for part in self.parts]
        powers = [reading.power_w for part, reading in readings if part in self.power_parts]
        # A partial sum would read low, and the governor would push the machine past
        # its target (and past max power) to make up for watts it cannot see.
        power_w = None if not powers or None in powers else sum(p for p in powers if p is not None)
        temperatures: dict[str, float] = {}
        for _part, reading in readings:
            for key, value in reading.temperatures_c.items():
                temperatures[_free_key(key, temperatures)] = value
        return HardwareReading(power_w=power_w, temperatures_c=temperatures)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def _free_key(key: str, taken: dict[str, float]) -> str:
    candidate, number = key, 1
    while candidate in taken:
        number += 1
        candidate = f"{key}#{number}"
    return candidate


def _try_open(opener: Callable[[], HardwareSource], reasons: list[str]) -> HardwareSource | None:
    try:
        return opener()
    except SourceUnavailable as err:
        reasons.append(str(err))
        return None


def open_real_sources(
    sysfs_root: Path, *, clock: Clock = time.monotonic
) -> tuple[CompositeSource | None, list[str]]:
    """Every readable real source, combined; None when none measures power.

    Also returns why each missing source is missing, for the log.
    """
    reasons: list[str] = []
    classes = sysfs_root / "class"
    rapl = _try_open(lambda: RaplSource(classes / "powercap", clock=clock), reasons)
    # hwmon power only without RAPL: on APUs and with CPU power drivers (fam15h_power,
    # zenpower) the channel covers the same package RAPL measures.
    hwmon = _try_open(lambda: HwmonSource(classes / "hwmon", power=rapl is None), reasons)
    thermal = _try_open(lambda: ThermalZoneSource(classes / "thermal"), reasons)
    nvml = _try_open(NvmlSource, reasons)

    parts = [part for part in (rapl, hwmon, thermal, nvml) if part is not None]
    power_parts = [
        part
        for part in parts
        if isinstance(part, RaplSource)
        or (isinstance(part, HwmonSource | NvmlSource) and part.measures_power)
    ]
    if not power_parts:
        for part in parts:
            part.close()
        return None, reasons
    return CompositeSource(parts, power_parts=power_parts), reasons


def open_hardware(
    choice: Literal["auto", "twin"],
    *,
    max_power_w: float,
    idle_power_w: float,
    sysfs_root: Path = Path("/sys"),
    clock: Clock = time.monotonic,
) -> HardwareSource:
    """The hardware source the node runs with ("twin" always simulates)."""
    if choice == "auto":
        source, reasons = open_real_sources(sysfs_root, clock=clock)
        if source is not None:
            _LOGGER.info("hardware: %s", source.name)
            for reason in reasons:
                _LOGGER.debug("hardware: not used: %s", reason)
            return source
        _LOGGER.info(
            "hardware: no readable power sensor, using the simulated twin (%s)",
            "; ".join(reasons) or "nothing found",
        )
    elif choice != "twin":
        raise ValueError(f"hardware must be auto or twin, got {choice!r}")
    return TwinSource(idle_power_w=idle_power_w, max_power_w=max_power_w, clock=clock)
