"""Power from Linux powercap/RAPL energy counters.

RAPL gives a cumulative energy counter per zone (``energy_uj``, µJ) that the CPU itself
keeps; power is the counter's delta over the wall time between two reads. Zones nest:
``intel-rapl:0`` (package) contains ``intel-rapl:0:0`` (core) and ``intel-rapl:0:1``
(uncore), so only the top-level zones are summed. Since CVE-2020-8694 (PLATYPUS) the
counter is readable by root only on most distributions: then this source is not
available and the node says so, it does not crash.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import re
import time

from heatcompute_node.hardware import common
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.common import Clock, SourceUnavailable, describe_error

_LOGGER = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/sys/class/powercap")

# AMD CPUs are served by the intel_rapl driver under the same names; an ``amd-rapl``
# control type is accepted too. ``intel-rapl-mmio`` is left out on purpose: it is the
# same package domain reached through MMIO and would count the package twice.
_ZONE = re.compile(r"^(?:intel|amd)-rapl:(\d+)(?::(\d+))?$")


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One energy counter that is summed into the machine's power."""

    path: Path
    label: str
    max_energy_range_uj: int | None
    """Where the counter wraps to zero; None when the kernel does not say."""


def find_zones(root: Path) -> list[RaplZone]:
    """The zones whose energies add up to the CPU's power without double counting.

    Package zones (``intel-rapl:N``), plus ``dram`` subzones: DRAM is powered outside
    the package domain, while core/uncore/graphics subzones are inside it. When a
    ``psys`` (platform) zone exists it already includes packages and DRAM, so it is
    used alone.
    """
    zones: list[RaplZone] = []
    psys: list[RaplZone] = []
    for path in common.list_dir(root):
        match = _ZONE.match(path.name)
        if match is None or not (path / "energy_uj").exists():
            continue
        label = common.try_read_text(path / "name") or path.name
        is_subzone = match.group(2) is not None
        if is_subzone and label != "dram":
            continue
        zone = RaplZone(
            path=path,
            label=label,
            max_energy_range_uj=common.try_read_int(path / "max_energy_range_uj"),
        )
        (psys if label == "psys" else zones).append(zone)
    return psys or zones


def energy_delta_uj(old: int, new: int, max_energy_range_uj: int | None) -> int | None:
    """Energy between two counter values, across one wrap; None when it cannot be known.

    A counter that went backwards wrapped (at 250 W a 262 kJ range wraps every ~17 min,
    far longer than the read interval, so one wrap at most is assumed). Without a known
    range, or with values outside it, the interval is unknowable, not zero.
    """
    if new >= old:
        return new - old
    if max_energy_range_uj is None or old > max_energy_range_uj:
        return None
    return max_energy_range_uj - old + new


class RaplSource(HardwareSource):
    """CPU package (and DRAM) power from RAPL energy counters."""

    name = "rapl"

    def __init__(self, root: Path = DEFAULT_ROOT, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.zones = find_zones(root)
        if not self.zones:
            raise SourceUnavailable(f"no RAPL package zone under {root}")
        # The first counter read doubles as the readability probe and as the baseline,
        # so the first read() already has an interval to measure over.
        try:
            self._last_uj = self._read_counters()
        except (OSError, ValueError) as err:
            raise SourceUnavailable(
                f"cannot read RAPL energy counters under {root}: {describe_error(err)}"
            ) from err
        self._last_time = clock()
        self._last_power_w: float | None = None

    @property
    def zone_labels(self) -> list[str]:
        """Which zones are summed, for logs and diagnostics."""
        return [zone.label for zone in self.zones]

    def _read_counters(self) -> list[int]:
        return [common.read_int(zone.path / "energy_uj") for zone in self.zones]

    def read(self) -> HardwareReading:
        now = self._clock()
        try:
            counters = self._read_counters()
        except (OSError, ValueError) as err:
            # Keep the old baseline: the next good read measures the whole longer interval.
            _LOGGER.debug("RAPL read failed: %s", describe_error(err))
            return HardwareReading(power_w=None)
        elapsed = now - self._last_time
        if elapsed <= 0:
            # Two reads within one clock tick: nothing new to measure.
            return HardwareReading(power_w=self._last_power_w)
        deltas = [
            energy_delta_uj(old, new, zone.max_energy_range_uj)
            for zone, old, new in zip(self.zones, self._last_uj, counters, strict=True)
        ]
        self._last_uj, self._last_time = counters, now
        known = [delta for delta in deltas if delta is not None]
        self._last_power_w = sum(known) / 1e6 / elapsed if len(known) == len(deltas) else None
        return HardwareReading(power_w=self._last_power_w)
