"""Chip temperatures (and, on some boards, power) from hwmon and thermal zones.

hwmon is the kernel's sensor class: ``/sys/class/hwmon/hwmonN/temp*_input`` in
millidegrees Celsius with an optional ``temp*_label``, and ``power*_input`` or
``power*_average`` in µW (amdgpu, fam15h_power). Thermal zones
(``/sys/class/thermal/thermal_zoneN/temp`` with a ``type``) are the ACPI/firmware view,
present on laptops and ARM boards that may have no hwmon chip at all.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import re

from heatcompute_node.hardware import common
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.common import SourceUnavailable, describe_error

_LOGGER = logging.getLogger(__name__)

DEFAULT_HWMON_ROOT = Path("/sys/class/hwmon")
DEFAULT_THERMAL_ROOT = Path("/sys/class/thermal")

# Disconnected sensors read -128 °C or -273.15 °C. Implausibly high values are kept on
# purpose: a safety limit that trips on a bogus 127 °C errs on the safe side.
_MIN_PLAUSIBLE_C = -50.0

# hwmon devices of power supplies: a battery's or charger's power already contains the
# CPU's (double counting) and, while charging, is not heat of this machine's work.
_POWER_SUPPLY = re.compile(r"^(?:BAT|AC|ADP|ucsi_source_psy)", re.IGNORECASE)

_TEMP_INPUT = re.compile(r"^temp(\d+)_input$")
_POWER_CHANNEL = re.compile(r"^power(\d+)_(?:input|average)$")


@dataclass(frozen=True, slots=True)
class Sensor:
    """One sysfs attribute and the name its value is reported under."""

    key: str
    path: Path
    scale: float
    """Multiplies the raw integer into °C or W."""


def _numbered(directory: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    found = [
        (int(match.group(1)), path)
        for path in common.list_dir(directory)
        if (match := pattern.match(path.name)) is not None
    ]
    return sorted(found)


def _unique(key: str, taken: set[str]) -> str:
    """Two nvme drives are both ``nvme/Composite``: later ones get ``#2``, ``#3``."""
    candidate, number = key, 1
    while candidate in taken:
        number += 1
        candidate = f"{key}#{number}"
    taken.add(candidate)
    return candidate


def _device_dir(hwmon: Path) -> Path:
    """Old drivers keep their attributes in ``hwmonN/device`` rather than ``hwmonN``."""
    if (hwmon / "name").exists() or not (hwmon / "device" / "name").exists():
        return hwmon
    return hwmon / "device"


def find_hwmon_sensors(root: Path) -> tuple[list[Sensor], list[Sensor]]:
    """Temperature sensors and power channels (at most one per device) under ``root``.

    Only one power channel per device is taken, the lowest numbered, ``_input``
    before ``_average``: drivers with several (amdgpu on APUs: slow and fast PPT) show
    views of the same power, and summing them would count it twice.
    """
    temperatures: list[Sensor] = []
    powers: list[Sensor] = []
    taken: set[str] = set()
    for hwmon in sorted(common.list_dir(root), key=lambda path: _natural(path.name)):
        device = _device_dir(hwmon)
        name = common.try_read_text(device / "name") or hwmon.name
        for index, path in _numbered(device, _TEMP_INPUT):
            label = common.try_read_text(device / f"temp{index}_label")
            key = f"{name}/{label}" if label else name
            temperatures.append(Sensor(_unique(key, taken), path, 1e-3))
        if _POWER_SUPPLY.match(name):
            continue
        channels = _numbered(device, _POWER_CHANNEL)
        if channels:
            first = channels[0][0]
            candidates = [path for index, path in channels if index == first]
            path = min(candidates, key=lambda path: not path.name.endswith("_input"))
            powers.append(Sensor(_unique(f"{name}/power{first}", taken), path, 1e-6))
    return temperatures, powers


def find_thermal_zones(root: Path) -> list[Sensor]:
    """Every ``thermal_zoneN/temp``, reported as ``thermal/<type>``."""
    taken: set[str] = set()
    sensors: list[Sensor] = []
    zones = [path for path in common.list_dir(root) if path.name.startswith("thermal_zone")]
    for zone in sorted(zones, key=lambda path: _natural(path.name)):
        if not (zone / "temp").exists():
            continue
        kind = common.try_read_text(zone / "type") or zone.name
        sensors.append(Sensor(_unique(f"thermal/{kind}", taken), zone / "temp", 1e-3))
    return sensors


def _natural(name: str) -> tuple[str, int]:
    """hwmon10 after hwmon9, so keys stay stable on machines with many sensors."""
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _read_temperatures(sensors: list[Sensor]) -> dict[str, float]:
    readings: dict[str, float] = {}
    for sensor in sensors:
        raw = common.try_read_int(sensor.path)
        if raw is not None and raw * sensor.scale >= _MIN_PLAUSIBLE_C:
            readings[sensor.key] = raw * sensor.scale
    return readings


class HwmonSource(HardwareSource):
    """hwmon temperatures, and hwmon power when asked to (when RAPL is absent)."""

    name = "hwmon"

    def __init__(self, root: Path = DEFAULT_HWMON_ROOT, *, power: bool = True) -> None:
        temperatures, powers = find_hwmon_sensors(root)
        self.temperature_sensors = temperatures
        # A power channel that cannot be read now would make every total unknown later.
        self.power_sensors: list[Sensor] = []
        if power:
            for sensor in powers:
                try:
                    common.read_int(sensor.path)
                except (OSError, ValueError) as err:
                    _LOGGER.debug("skipping %s: %s", sensor.path, describe_error(err))
                else:
                    self.power_sensors.append(sensor)
        if not self.power_sensors and not _read_temperatures(self.temperature_sensors):
            raise SourceUnavailable(f"no readable hwmon sensor under {root}")

    @property
    def measures_power(self) -> bool:
        return bool(self.power_sensors)

    def read(self) -> HardwareReading:
        power_w: float | None = None
        if self.power_sensors:
            values = [common.try_read_int(sensor.path) for sensor in self.power_sensors]
            known = [value * 1e-6 for value in values if value is not None]
            power_w = sum(known) if len(known) == len(values) else None
        return HardwareReading(
            power_w=power_w, temperatures_c=_read_temperatures(self.temperature_sensors)
        )


class ThermalZoneSource(HardwareSource):
    """Temperatures of the kernel's thermal zones."""

    name = "thermal"

    def __init__(self, root: Path = DEFAULT_THERMAL_ROOT) -> None:
        self.sensors = find_thermal_zones(root)
        if not _read_temperatures(self.sensors):
            raise SourceUnavailable(f"no readable thermal zone under {root}")

    def read(self) -> HardwareReading:
        return HardwareReading(power_w=None, temperatures_c=_read_temperatures(self.sensors))
