"""A stand-in for ``pynvml`` (package nvidia-ml-py) on machines without an NVIDIA GPU.

It implements only the NVML calls the node makes, with the real library's units:
power in mW, temperature in °C, errors as ``NVMLError``.
"""

from __future__ import annotations

import types


class NVMLError(Exception):
    pass


class FakeNvml(types.ModuleType):
    """pynvml as seen on a machine with these GPUs: (power mW or None, temperature °C)."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[tuple[int | None, int]], *, init_fails: bool = False) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_fails = init_fails
        self.initialised = False
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_fails:
            raise NVMLError("NVML Shared Library Not Found")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        power = self.gpus[handle][0]
        if power is None:
            raise NVMLError("Not Supported")
        return power

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self.gpus[handle][1]
