"""NVIDIA GPU power and temperature through NVML (package ``nvidia-ml-py``).

``pynvml`` is imported only when this source is opened: machines without an NVIDIA
driver must not pay for it, and a missing module or driver only means "no GPU here".
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.hardware.common import SourceUnavailable

_LOGGER = logging.getLogger(__name__)


class NvmlSource(HardwareSource):
    """Power (summed) and temperature (``gpu-N``) of every NVIDIA GPU."""

    name = "nvml"

    def __init__(self, *, module: Any | None = None) -> None:
        """Open NVML; ``module`` replaces ``pynvml`` (tests have no GPU)."""
        if module is None:
            try:
                module = importlib.import_module("pynvml")
            except ImportError as err:
                raise SourceUnavailable("pynvml (nvidia-ml-py) is not installed") from err
        self._nvml = module
        # NVMLError covers a missing driver library; OSError a broken one.
        self._errors: tuple[type[Exception], ...] = (module.NVMLError, OSError)
        try:
            module.nvmlInit()
        except self._errors as err:
            raise SourceUnavailable(f"NVML cannot start: {err}") from err
        self._open = True
        try:
            self._handles = [
                module.nvmlDeviceGetHandleByIndex(index)
                for index in range(module.nvmlDeviceGetCount())
            ]
        except self._errors as err:
            self.close()
            raise SourceUnavailable(f"NVML cannot list GPUs: {err}") from err
        if not self._handles:
            self.close()
            raise SourceUnavailable("NVML found no GPU")
        # Some GPUs have no power sensor (NVML_ERROR_NOT_SUPPORTED). They cannot be
        # counted, and asking every read would make every total unknown.
        self._powered = [
            index for index in range(len(self._handles)) if self._power_w(index) is not None
        ]
        missing = len(self._handles) - len(self._powered)
        if missing:
            _LOGGER.info("%d of %d GPUs report no power: not counted", missing, len(self._handles))

    @property
    def gpu_count(self) -> int:
        return len(self._handles)

    @property
    def measures_power(self) -> bool:
        return bool(self._powered)

    def _power_w(self, index: int) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetPowerUsage(self._handles[index])) / 1000.0
        except self._errors:
            return None

    def _temperature_c(self, index: int) -> float | None:
        try:
            return float(
                self._nvml.nvmlDeviceGetTemperature(
                    self._handles[index], self._nvml.NVML_TEMPERATURE_GPU
                )
            )
        except self._errors:
            return None

    def read(self) -> HardwareReading:
        temperatures = {
            f"gpu-{index}": value
            for index in range(len(self._handles))
            if (value := self._temperature_c(index)) is not None
        }
        power_w: float | None = None
        if self._powered:
            powers = [self._power_w(index) for index in self._powered]
            known = [power for power in powers if power is not None]
            power_w = sum(known) if len(known) == len(powers) else None
        return HardwareReading(power_w=power_w, temperatures_c=temperatures)

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except self._errors as err:
                _LOGGER.debug("nvmlShutdown failed: %s", err)
