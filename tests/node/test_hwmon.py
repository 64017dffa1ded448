"""hwmon and thermal-zone sensors on recorded sysfs trees (tests/fixtures/sysfs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatcompute_node.hardware.common import SourceUnavailable
from heatcompute_node.hardware.hwmon import HwmonSource, ThermalZoneSource
from tests.node.sysfs_machines import FIXTURES, deny, machine, write


def hwmon(root: Path) -> Path:
    return root / "class" / "hwmon"


def thermal(root: Path) -> Path:
    return root / "class" / "thermal"


def test_intel_temperatures_with_labels() -> None:
    """Labels where the driver gives them, the chip's name where it does not."""
    source = HwmonSource(hwmon(FIXTURES / "intel-desktop"))
    reading = source.read()
    assert reading.temperatures_c == {
        "acpitz": pytest.approx(27.8),
        "nvme/Composite": pytest.approx(38.85),
        "nvme/Sensor 1": pytest.approx(38.85),
        "coretemp/Package id 0": pytest.approx(45.0),
        "coretemp/Core 0": pytest.approx(43.0),
        "coretemp/Core 1": pytest.approx(44.0),
        "coretemp/Core 2": pytest.approx(42.0),
        "coretemp/Core 3": pytest.approx(45.0),
        "nct6798/SYSTIN": pytest.approx(32.0),
        # nct6798/AUXTIN0 reads -128 °C: a disconnected input, left out.
    }
    assert reading.power_w is None
    assert not source.measures_power
    assert reading.max_chip_temperature_c == pytest.approx(45.0)


def test_thermal_zones() -> None:
    source = ThermalZoneSource(thermal(FIXTURES / "intel-desktop"))
    assert source.read().temperatures_c == {
        "thermal/acpitz": pytest.approx(27.8),
        "thermal/x86_pkg_temp": pytest.approx(45.0),
    }


def test_amdgpu_power_average(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = hwmon(machine("amd-desktop", tmp_path, monkeypatch))
    source = HwmonSource(root)
    assert source.measures_power
    reading = source.read()
    assert reading.power_w == pytest.approx(35.0)
    assert reading.temperatures_c["k10temp/Tctl"] == pytest.approx(52.375)
    assert reading.temperatures_c["amdgpu/junction"] == pytest.approx(48.0)

    write(root / "hwmon2" / "power1_average", 120_500_000)
    write(root / "hwmon1" / "temp1_input", 71_250)
    reading = source.read()
    assert reading.power_w == pytest.approx(120.5)
    assert reading.max_chip_temperature_c == pytest.approx(71.25)


def test_power_can_be_left_out() -> None:
    """Detection asks for temperatures only when RAPL already measures the CPU."""
    source = HwmonSource(hwmon(FIXTURES / "amd-desktop"), power=False)
    assert not source.measures_power
    assert source.read().power_w is None


def test_input_preferred_one_channel_per_device_and_no_batteries(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    files = {
        # An APU: power1 (input and average) and power2 are views of one PPT.
        "hwmon0/name": "amdgpu",
        "hwmon0/power1_average": 20_000_000,
        "hwmon0/power1_input": 22_000_000,
        "hwmon0/power2_average": 25_000_000,
        # The laptop's battery: already contains the APU's power.
        "hwmon1/name": "BAT0",
        "hwmon1/power1_input": 31_000_000,
        # An old driver keeps its attributes in device/.
        "hwmon2/device/name": "it87",
        "hwmon2/device/temp1_input": 36_000,
    }
    for relative, value in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    source = HwmonSource(root)
    assert [sensor.path.name for sensor in source.power_sensors] == ["power1_input"]
    reading = source.read()
    assert reading.power_w == pytest.approx(22.0)
    assert reading.temperatures_c == {"it87": pytest.approx(36.0)}


def test_same_names_get_numbered(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    for index, value in enumerate((40_000, 50_000)):
        device = root / f"hwmon{index}"
        device.mkdir(parents=True)
        (device / "name").write_text("nvme\n")
        (device / "temp1_label").write_text("Composite\n")
        write(device / "temp1_input", value)
    assert HwmonSource(root).read().temperatures_c == {
        "nvme/Composite": pytest.approx(40.0),
        "nvme/Composite#2": pytest.approx(50.0),
    }


def test_a_failing_sensor_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = machine("intel-desktop", tmp_path, monkeypatch)
    source = HwmonSource(hwmon(root))
    deny([hwmon(root) / "hwmon1" / "temp1_input"], monkeypatch)
    temperatures = source.read().temperatures_c
    assert "nvme/Composite" not in temperatures
    assert temperatures["coretemp/Package id 0"] == pytest.approx(45.0)


def test_unreadable_power_channel_is_not_a_power_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hwmon(machine("amd-desktop", tmp_path, monkeypatch))
    deny([root / "hwmon2" / "power1_average"], monkeypatch)
    source = HwmonSource(root)
    assert not source.measures_power
    assert source.read().temperatures_c["amdgpu/edge"] == pytest.approx(46.0)


def test_nothing_readable_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = machine("locked-laptop", tmp_path, monkeypatch)
    with pytest.raises(SourceUnavailable, match="hwmon"):
        HwmonSource(hwmon(root))
    with pytest.raises(SourceUnavailable, match="thermal zone"):
        ThermalZoneSource(thermal(root))
    with pytest.raises(SourceUnavailable):
        ThermalZoneSource(thermal(FIXTURES / "amd-desktop"))  # cooling devices only
