"""The ONNX engine's errors, each with Triton's error code (the API maps codes to HTTP)."""

from __future__ import annotations

from typing import Literal

type ErrorCode = Literal["NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "INTERNAL"]


class InferenceError(Exception):
    """A request the engine can't serve; ``code`` is Triton's TRITONSERVER_Error code."""

    code: ErrorCode = "INTERNAL"


class ModelNotFoundError(InferenceError):
    code = "NOT_FOUND"


class InvalidInputError(InferenceError):
    """Wrong input names, shapes or dtypes, or a batch larger than the model allows."""

    code = "INVALID_ARG"


class QueueFullError(InferenceError):
    code = "UNAVAILABLE"

    def __init__(self) -> None:
        # Triton's own words, which its clients and users search for.
        super().__init__("Exceeds maximum queue size")


class RequestTimeoutError(InferenceError):
    code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("Request timeout expired")


class ModelUnavailableError(InferenceError):
    """Not loaded, failed to load, or being unloaded."""

    code = "UNAVAILABLE"


class ModelRunError(InferenceError):
    """onnxruntime raised while computing this request's batch."""

    code = "INTERNAL"
