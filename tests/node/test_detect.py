"""Choosing the hardware source on each recorded machine (tests/fixtures/sysfs).

NVML is controlled in every test: absent (``pynvml`` import fails) or the fake GPU
module from fake_nvml.py, since no machine running these tests is assumed to have one.
"""

from __future__ import annotations

import logging
from pathlib import Path
import sys
from typing import Any

import pytest

from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.detect import CompositeSource, open_hardware
from heatcompute_node.hardware.hwmon import HwmonSource
from heatcompute_node.hardware.twin import ProcessCpuPower, TwinSource
from tests.node.fake_nvml import FakeNvml
from tests.node.sysfs_machines import machine, write


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)


def gpu(monkeypatch: pytest.MonkeyPatch, gpus: list[tuple[int | None, int]]) -> None:
    fake: Any = FakeNvml(gpus)
    monkeypatch.setitem(sys.modules, "pynvml", fake)


def auto(root: Path, clock: FakeClock | None = None) -> HardwareSource:
    return open_hardware(
        "auto", max_power_w=200.0, idle_power_w=15.0, sysfs_root=root, clock=clock or FakeClock()
    )


def test_intel_desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = machine("intel-desktop", tmp_path, monkeypatch)
    clock = FakeClock()
    source = auto(root, clock)
    assert isinstance(source, CompositeSource)
    assert source.name == "rapl+hwmon+thermal"

    write(root / "class/powercap/intel-rapl:0/energy_uj", 48213904821 + 42_000_000)
    clock.now += 1.0
    reading = source.read()
    assert reading.power_w == pytest.approx(42.0)
    assert reading.temperatures_c["coretemp/Package id 0"] == pytest.approx(45.0)
    assert reading.temperatures_c["thermal/x86_pkg_temp"] == pytest.approx(45.0)
    assert reading.room_temperature_c is None
    source.close()


def test_amd_desktop_uses_hwmon_power(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = auto(machine("amd-desktop", tmp_path, monkeypatch))
    assert source.name == "hwmon"
    reading = source.read()
    assert reading.power_w == pytest.approx(35.0)
    assert reading.max_chip_temperature_c == pytest.approx(52.375)


def test_hwmon_power_is_ignored_when_rapl_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An APU's amdgpu channel covers the package RAPL already counts."""
    root = machine("intel-desktop", tmp_path, monkeypatch)
    amdgpu = root / "class/hwmon/hwmon9"
    amdgpu.mkdir()
    (amdgpu / "name").write_text("amdgpu\n")
    write(amdgpu / "power1_average", 30_000_000)
    source = auto(root)
    assert isinstance(source, CompositeSource)
    assert [part.name for part in source.power_parts] == ["rapl"]
    hwmon = next(part for part in source.parts if isinstance(part, HwmonSource))
    assert not hwmon.measures_power


def test_locked_laptop_falls_back_to_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="heatcompute_node.hardware.detect"):
        source = auto(machine("locked-laptop", tmp_path, monkeypatch))
    assert isinstance(source, TwinSource)
    assert source.name == "twin"
    assert isinstance(source.power, ProcessCpuPower)
    assert (source.power.idle_w, source.power.max_w) == (15.0, 200.0)
    record = next(r for r in caplog.records if "simulated twin" in r.getMessage())
    assert record.levelno == logging.INFO
    assert "permission denied" in record.getMessage()
    assert "pynvml" in record.getMessage()


def test_container_without_sysfs_sensors_is_twin(tmp_path: Path) -> None:
    assert auto(tmp_path).name == "twin"


def test_twin_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = machine("intel-desktop", tmp_path, monkeypatch)
    source = open_hardware("twin", max_power_w=300.0, idle_power_w=40.0, sysfs_root=root)
    assert isinstance(source, TwinSource)
    assert isinstance(source.power, ProcessCpuPower)
    assert source.power.max_w == 300.0


def test_gpu_power_adds_to_rapl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu(monkeypatch, [(150_000, 70)])
    root = machine("intel-desktop", tmp_path, monkeypatch)
    clock = FakeClock()
    source = auto(root, clock)
    assert source.name == "rapl+hwmon+thermal+nvml"
    write(root / "class/powercap/intel-rapl:0/energy_uj", 48213904821 + 60_000_000)
    clock.now += 1.0
    reading = source.read()
    assert reading.power_w == pytest.approx(210.0)
    assert reading.temperatures_c["gpu-0"] == 70.0
    assert reading.max_chip_temperature_c == 70.0


def test_gpu_alone_on_a_locked_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu(monkeypatch, [(90_000, 55)])
    source = auto(machine("locked-laptop", tmp_path, monkeypatch))
    assert source.name == "nvml"
    assert source.read().power_w == pytest.approx(90.0)


def test_gpu_temperatures_alone_are_not_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake: Any = FakeNvml([(None, 55)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert auto(machine("locked-laptop", tmp_path, monkeypatch)).name == "twin"
    assert fake.shutdowns == 1  # the unused source was closed


class Parts(HardwareSource):
    def __init__(self, name: str, reading: HardwareReading) -> None:
        self.name = name
        self.reading = reading

    def read(self) -> HardwareReading:
        return self.reading


def test_composite_power_is_unknown_if_any_part_is() -> None:
    cpu = Parts("cpu", HardwareReading(power_w=None, temperatures_c={"t": 40.0}))
    gpu_part = Parts("gpu", HardwareReading(power_w=80.0, temperatures_c={"t": 60.0}))
    source = CompositeSource([cpu, gpu_part], power_parts=[cpu, gpu_part])
    reading = source.read()
    assert reading.power_w is None
    assert reading.temperatures_c == {"t": 40.0, "t#2": 60.0}

    cpu.reading = HardwareReading(power_w=20.0)
    assert source.read().power_w == pytest.approx(100.0)
    with pytest.raises(ValueError, match="subset"):
        CompositeSource([cpu], power_parts=[gpu_part])
