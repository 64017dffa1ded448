"""NVIDIA GPUs through NVML.

This machine has no GPU (and CI machines rarely do), so these tests inject a fake
``pynvml`` module that implements the handful of NVML calls the source makes, with the
units the real library uses (power in mW, temperature in °C). One test uses the real
``pynvml`` when installed, to show that a machine without the driver reads as "no GPU".
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from heatcompute_node.hardware.common import SourceUnavailable
from heatcompute_node.hardware.nvml import NvmlSource
from tests.node.fake_nvml import FakeNvml


def test_power_and_temperature_of_every_gpu() -> None:
    fake = FakeNvml([(182_345, 67), (95_000, 58)])
    source = NvmlSource(module=fake)
    assert source.gpu_count == 2
    reading = source.read()
    assert reading.power_w == pytest.approx(277.345)
    assert reading.temperatures_c == {"gpu-0": 67.0, "gpu-1": 58.0}
    source.close()
    source.close()
    assert fake.shutdowns == 1


def test_gpu_without_power_sensor_is_left_out_of_the_sum() -> None:
    source = NvmlSource(module=FakeNvml([(None, 45), (120_000, 60)]))
    assert source.measures_power
    assert source.read().power_w == pytest.approx(120.0)


def test_no_power_sensor_at_all_gives_temperatures_only() -> None:
    source = NvmlSource(module=FakeNvml([(None, 45)]))
    assert not source.measures_power
    reading = source.read()
    assert reading.power_w is None
    assert reading.temperatures_c == {"gpu-0": 45.0}


def test_a_failing_read_is_unknown_power_not_a_crash() -> None:
    fake = FakeNvml([(100_000, 50)])
    source = NvmlSource(module=fake)
    fake.gpus[0] = (None, 50)  # the GPU fell off the bus
    assert source.read().power_w is None


def test_driver_missing_is_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="NVML cannot start"):
        NvmlSource(module=FakeNvml([], init_fails=True))


def test_no_gpu_is_unavailable_and_shuts_down() -> None:
    fake = FakeNvml([])
    with pytest.raises(SourceUnavailable, match="no GPU"):
        NvmlSource(module=fake)
    assert fake.shutdowns == 1


def test_module_missing_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes the import fail
    with pytest.raises(SourceUnavailable, match="not installed"):
        NvmlSource()


def test_imported_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    fake: Any = FakeNvml([(50_000, 40)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert NvmlSource().read().power_w == pytest.approx(50.0)


def test_real_pynvml_without_driver_is_unavailable() -> None:
    pytest.importorskip("pynvml")
    try:
        source = NvmlSource()
    except SourceUnavailable:
        return
    source.close()
    pytest.skip("this machine has a working NVIDIA driver")
