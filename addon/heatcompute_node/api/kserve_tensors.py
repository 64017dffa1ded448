"""Tensors in a KServe v2 infer request and response: JSON data and the binary extension.

With the binary tensor data extension the body is the JSON request (its length in the
``Inference-Header-Content-Length`` header) followed by the raw bytes of every input
that says ``"binary_data_size"``, in order. Clients (tritonclient) send no Content-Type.
Answers use binary for the outputs a client asked for that way, with the same header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
import math
from typing import Any

import numpy as np

from ..engines.onnx.session import NUMPY_OF

HEADER_LENGTH = "Inference-Header-Content-Length"
_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})


class TensorError(ValueError):
    """The request body is malformed (Triton answers these with 400)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedRequest:
    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: tuple[str, ...] | None
    binary_outputs: frozenset[str]
    binary_all: bool
    parameters: dict[str, Any]


def parse_infer_request(body: bytes, header_length: str | None) -> ParsedRequest:
    if header_length is not None:
        try:
            json_length = int(header_length)
        except ValueError as err:
            raise TensorError(f"{HEADER_LENGTH} must be a byte count") from err
        if not 0 < json_length <= len(body):
            raise TensorError(f"{HEADER_LENGTH} {json_length} is outside the body")
    else:
        json_length = len(body)
    try:
        request = json.loads(body[:json_length])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TensorError(f"failed to parse the request JSON buffer: {err}") from err
    if not isinstance(request, dict):
        raise TensorError("the request must be a JSON object")
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        raise TensorError(f"unexpected field(s) in the request: {', '.join(unknown)}")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise TensorError("the request must have a non-empty 'inputs' list")
    binary = memoryview(body)[json_length:]
    offset = 0
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for raw in raw_inputs:
        name, array, used = _input(raw, binary, offset)
        if name in inputs:
            raise TensorError(f"input '{name}' is given twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise TensorError(
            f"the body has {len(binary) - offset} bytes of binary data no input claims"
        )
    parameters = _parameters(request.get("parameters"), "request")
    outputs, binary_outputs = _outputs(request.get("outputs"))
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise TensorError("'id' must be a string")
    return ParsedRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_all=bool(parameters.get("binary_data_output", False)),
        parameters=parameters,
    )


def _input(  # noqa: PLR0912 - one check per field, each with its own message
    raw: Any, binary: memoryview, offset: int
) -> tuple[str, np.ndarray[Any, Any], int]:
    if not isinstance(raw, dict):
        raise TensorError("each input must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError("each input needs a 'name'")
    datatype = raw.get("datatype")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise TensorError(f"input '{name}': 'shape' must be a list of sizes")
    if datatype == "BYTES":
        raise TensorError(f"input '{name}': datatype BYTES is not supported by ONNX models here")
    if datatype not in NUMPY_OF:
        raise TensorError(f"input '{name}': unknown datatype {datatype!r}")
    dtype = NUMPY_OF[datatype]
    count = math.prod(shape)
    parameters = _parameters(raw.get("parameters"), f"input '{name}'")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise TensorError(f"input '{name}' has both binary data and 'data'")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TensorError(f"input '{name}': binary_data_size must be a byte count")
        if offset + size > len(binary):
            raise TensorError(f"input '{name}': binary data is shorter than binary_data_size")
        if size != count * dtype.itemsize:
            raise TensorError(
                f"input '{name}': binary_data_size {size} does not match shape {shape} of "
                f"{datatype} ({count * dtype.itemsize} bytes)"
            )
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return name, array, size
    if "data" not in raw:
        raise TensorError(f"input '{name}' has neither 'data' nor binary data")
    try:
        flat = np.asarray(raw["data"], dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TensorError(f"input '{name}': data is not {datatype}: {err}") from err
    if flat.size != count:
        raise TensorError(
            f"input '{name}': {flat.size} values do not fill shape {shape} ({count} values)"
        )
    return name, flat.reshape(shape), 0


def _outputs(raw: Any) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    if raw is None:
        return None, frozenset()
    if not isinstance(raw, list):
        raise TensorError("'outputs' must be a list")
    names: list[str] = []
    binary: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TensorError("each requested output needs a 'name'")
        parameters = _parameters(item.get("parameters"), f"output '{item['name']}'")
        if "classification" in parameters:
            raise TensorError("the classification extension is not supported")
        names.append(item["name"])
        if parameters.get("binary_data"):
            binary.add(item["name"])
    return tuple(names), frozenset(binary)


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TensorError(f"{where}: 'parameters' must be an object")
    return raw


def encode_infer_response(
    *,
    model_name: str,
    model_version: int,
    request: ParsedRequest,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    datatypes: Mapping[str, str],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON part's length when binary data follows it."""
    entries: list[dict[str, Any]] = []
    chunks: list[memoryview] = []
    for name, value in outputs.items():
        array = np.ascontiguousarray(value)
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatypes[name],
            "shape": list(array.shape),
        }
        if request.binary_all or name in request.binary_outputs:
            # A view, not a copy: the body below is the one copy of the output's bytes.
            raw = memoryview(array).cast("B") if array.size else memoryview(b"")
            entry["parameters"] = {"binary_data_size": raw.nbytes}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": str(model_version),
        "outputs": entries,
    }
    if request.id is not None:
        response["id"] = request.id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return b"".join((head, *chunks)), len(head)
