"""One loaded model version: an onnxruntime session and what the model says about itself.

Names, dtypes and shapes of inputs and outputs come from the model file; nothing is
declared twice. ``run`` blocks (onnxruntime releases the GIL while it computes), so the
batcher calls it on a worker thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_FILE_NAME = "model.onnx"

# onnxruntime's type strings -> KServe v2 datatypes and numpy dtypes.
DATATYPES: dict[str, tuple[str, npt.DTypeLike]] = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(double)": ("FP64", np.float64),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(bool)": ("BOOL", np.bool_),
}
NUMPY_OF: dict[str, np.dtype[Any]] = {
    datatype: np.dtype(dtype) for datatype, dtype in DATATYPES.values()
}


class ModelLoadError(Exception):
    """The model file can't be loaded (missing, corrupt, an unsupported type)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSpec:
    name: str
    datatype: str
    """KServe v2 datatype, e.g. FP32."""
    shape: tuple[int, ...]
    """Full shape as the model declares it; -1 where any size is allowed."""

    @property
    def dtype(self) -> np.dtype[Any]:
        return NUMPY_OF[self.datatype]


@dataclass(slots=True, kw_only=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]
    """The model's custom metadata (the recogniser keeps its character list here)."""
    session: Any
    variant: str = "float"
    """float, or int8 once a checked int8 variant serves in its place."""

    @classmethod
    def load(cls, name: str, version: int, path: Path, *, threads: int) -> ModelVersion:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Threads follow the node's engine setting; one batch at a time uses them all.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: a spin is watts without work (on
        # a heater too, the work is what the heat buys), and spinning threads steal the
        # cores the event loop and the LLM engine need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own zoo of exception types
            raise ModelLoadError(f"{path}: {err}") from err
        try:
            inputs = tuple(_spec(arg) for arg in session.get_inputs())
            outputs = tuple(_spec(arg) for arg in session.get_outputs())
        except KeyError as err:
            raise ModelLoadError(f"{path}: unsupported tensor type {err}") from err
        meta = session.get_modelmeta()
        return cls(
            name=name,
            version=version,
            path=path,
            inputs=inputs,
            outputs=outputs,
            metadata=dict(meta.custom_metadata_map),
            session=session,
        )

    def run(self, feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        names = [spec.name for spec in self.outputs]
        values = self.session.run(names, feeds)
        return dict(zip(names, values, strict=True))

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)


def _spec(arg: Any) -> TensorSpec:
    datatype, _ = DATATYPES[arg.type]
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape)
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)
