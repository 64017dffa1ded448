"""Layers of a chat model on other machines: llama.cpp's RPC backend, through ctypes.

llama-cpp-python 0.3.36 ignores ``Llama(rpc_servers=...)``, but the RPC backend is in
its build. ggml's own registry is reached by loading ``libggml.so.0`` and
``libggml-rpc.so.0`` (the names llama.cpp itself links: loading ``libggml.so`` would
make a second registry, and every layer would silently stay on the CPU).

An RPC device is registered once per endpoint and process; a model then names its
devices explicitly (so other models in the process never touch them). A lost server
ends the process (ggml aborts on a broken RPC connection): only a process made for
the split (the lead's engine process, fleet/engine_process.py) ever uses this.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
import functools
from pathlib import Path
import threading
from typing import Any

import llama_cpp

_register_lock = threading.Lock()
_devices: dict[str, int] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Offload:
    """Which layers go to which RPC servers.

    llama.cpp keeps the first ``n_layers + 1 - gpu_layers`` layers on this machine's CPU
    and spreads the rest (and the output layer) over ``servers`` in proportion to
    ``split`` (one weight per server).
    """

    servers: tuple[str, ...]
    gpu_layers: int
    split: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.servers or len(self.split) != len(self.servers):
            raise ValueError("one split weight per RPC server, at least one server")
        if self.gpu_layers < 1 or any(w < 0 for w in self.split) or sum(self.split) <= 0:
            raise ValueError("layers and weights must be positive")

    def text(self) -> str:
        """The command-line form, ``GPU_LAYERS:host:port=weight,...``."""
        servers = ",".join(f"{s}={w:g}" for s, w in zip(self.servers, self.split, strict=True))
        return f"{self.gpu_layers}:{servers}"

    @classmethod
    def parse(cls, text: str) -> Offload:
        layers, _, servers = text.partition(":")
        try:
            pairs = [item.rsplit("=", 1) for item in servers.split(",") if item]
            return cls(
                servers=tuple(endpoint for endpoint, _ in pairs),
                gpu_layers=int(layers),
                split=tuple(float(weight) for _, weight in pairs),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"not GPU_LAYERS:host:port=weight,...: {text!r} ({err})") from err


@dataclass(frozen=True, slots=True)
class GgmlLibraries:
    ggml: ctypes.CDLL
    rpc: ctypes.CDLL


@functools.cache
def ggml_libraries() -> GgmlLibraries:
    """ggml and its RPC backend, as llama.cpp itself loaded them (one registry)."""
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    ggml = ctypes.CDLL(str(lib_dir / "libggml.so.0"))
    rpc = ctypes.CDLL(str(lib_dir / "libggml-rpc.so.0"))
    ggml.ggml_backend_register.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_register.restype = None
    ggml.ggml_backend_reg_dev_get.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    ggml.ggml_backend_reg_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
    rpc.ggml_backend_rpc_add_server.argtypes = [ctypes.c_char_p]
    rpc.ggml_backend_rpc_add_server.restype = ctypes.c_void_p
    rpc.ggml_backend_rpc_start_server.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    rpc.ggml_backend_rpc_start_server.restype = None
    return GgmlLibraries(ggml=ggml, rpc=rpc)


def rpc_device(endpoint: str) -> int:
    """The ggml device of the RPC server at ``host:port`` (registered on first use).

    Connects to the server (ggml asks it for its devices): call it only when the server
    is there, else the process aborts."""
    with _register_lock:
        if endpoint in _devices:
            return _devices[endpoint]
        libs = ggml_libraries()
        reg = libs.rpc.ggml_backend_rpc_add_server(endpoint.encode())
        if not reg:
            raise RuntimeError(f"the RPC server at {endpoint} has no devices")
        libs.ggml.ggml_backend_register(reg)
        device = libs.ggml.ggml_backend_reg_dev_get(reg, 0)
        if not device:
            raise RuntimeError(f"the RPC server at {endpoint} has no device 0")
        _devices[endpoint] = int(device)
        return int(device)


class _BufferTypeOverride(ctypes.Structure):
    _fields_ = (("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p))


# The model's head stays on this machine: llama.cpp would put the output layer on the
# last RPC server, and its logits (one float per vocabulary entry, 196 KB a token for
# a 49k vocabulary) would cross the network at every step instead of one hidden state.
_HEAD_ON_THIS_MACHINE = (b"^output", b"^token_embd")


class ModelPlacement:
    """What `llama_model_params` needs for an offload; kept alive as long as the load."""

    def __init__(self, offload: Offload) -> None:
        devices = [rpc_device(endpoint) for endpoint in offload.servers]
        self._devices = (ctypes.c_void_p * (len(devices) + 1))(*devices, None)
        n_max = int(llama_cpp.llama_max_devices())
        weights = list(offload.split) + [0.0] * (n_max - len(offload.split))
        self._split = (ctypes.c_float * n_max)(*weights)
        self.gpu_layers = offload.gpu_layers
        libs = ggml_libraries()
        cpu_buft = libs.ggml.ggml_backend_dev_buffer_type(libs.ggml.ggml_backend_dev_by_type(0))
        self._overrides = (_BufferTypeOverride * (len(_HEAD_ON_THIS_MACHINE) + 1))(
            *(_BufferTypeOverride(pattern, cpu_buft) for pattern in _HEAD_ON_THIS_MACHINE),
            _BufferTypeOverride(None, None),
        )

    def apply(self, params: Any) -> None:
        params.devices = ctypes.cast(self._devices, ctypes.c_void_p)
        params.tensor_split = ctypes.cast(self._split, ctypes.POINTER(ctypes.c_float))
        params.n_gpu_layers = self.gpu_layers
        params.tensor_buft_overrides = ctypes.cast(self._overrides, ctypes.c_void_p)


def serve_rpc(endpoint: str, threads: int) -> None:
    """Run ggml's RPC server on ``endpoint`` with this machine's CPU; never returns."""
    libs = ggml_libraries()
    cpu = libs.ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
    if not cpu:
        raise RuntimeError("ggml has no CPU device")
    devices = (ctypes.c_void_p * 1)(cpu)
    libs.rpc.ggml_backend_rpc_start_server(endpoint.encode(), None, threads, 1, devices)
