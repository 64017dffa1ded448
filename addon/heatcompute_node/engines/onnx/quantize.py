"""The int8 variant of a model, served only where it stays ε-close to the float model.

onnxruntime's dynamic quantisation turns the weights into int8 (activations are
quantised per batch at run time); it needs no calibration data. Whether the result is
still the same model is a question for data: the model's folder keeps a check set
(``check.npz``: one array per input, samples along the first axis), both variants run it,
and the int8 one serves only if no output moved by more than the model's ε. Otherwise
the float model keeps serving and the report says by how much ε was broken. A model
without a check set never serves int8: unchecked is not ε-close.
"""

from __future__ import annotations

from pathlib import Path
import time
from typing import Any

import numpy as np

from .config import ModelConfig
from .session import ModelLoadError, ModelVersion
from .stats import QuantizationReport

INT8_FILE_NAME = "model.int8.onnx"
_TIMING_ROUNDS = 3


def prepare_serving_variant(
    model: ModelVersion, folder: Path, config: ModelConfig, *, threads: int
) -> tuple[ModelVersion, QuantizationReport | None]:
    """The variant to serve for this version, and the int8 check's report (if asked for)."""
    wanted = config.quantization
    if not wanted.int8:
        return model, None
    check_path = folder / wanted.check_set
    if not check_path.is_file():
        return model, QuantizationReport(
            served=False,
            reason=f"no check set '{wanted.check_set}' in the model's folder: int8 is never "
            "served unchecked",
            epsilon=wanted.epsilon,
        )
    try:
        check = load_check_set(check_path, model)
        int8_path = model.path.with_name(INT8_FILE_NAME)
        if not int8_path.exists() or int8_path.stat().st_mtime < model.path.stat().st_mtime:
            quantize_int8(model.path, int8_path)
        int8 = ModelVersion.load(model.name, model.version, int8_path, threads=threads)
    except (OSError, ValueError, ModelLoadError) as err:
        return model, QuantizationReport(
            served=False, reason=f"int8 variant not made: {err}", epsilon=wanted.epsilon
        )
    report = compare(
        model,
        int8,
        check,
        epsilon=wanted.epsilon,
        batch=config.max_batch_size,
        min_speedup=wanted.min_speedup,
    )
    if report.served:
        int8.variant = "int8"
        return int8, report
    return model, report


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".tmp")
    try:
        quantize_dynamic(source, tmp, weight_type=QuantType.QInt8)
    except Exception as err:  # the quantiser raises anything from onnx's checker
        tmp.unlink(missing_ok=True)
        raise ValueError(f"onnxruntime could not quantise {source.name}: {err}") from err
    tmp.replace(target)


def load_check_set(path: Path, model: ModelVersion) -> dict[str, np.ndarray[Any, Any]]:
    with np.load(path, allow_pickle=False) as data:
        check = {name: data[name] for name in data.files}
    names = {spec.name for spec in model.inputs}
    if set(check) != names:
        raise ValueError(
            f"check set {path.name} holds {sorted(check)}, the model takes {sorted(names)}"
        )
    sizes = {array.shape[0] for array in check.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"check set {path.name}: inputs disagree on the number of samples")
    return check


def compare(
    reference: ModelVersion,
    candidate: ModelVersion,
    check: dict[str, np.ndarray[Any, Any]],
    *,
    epsilon: float,
    batch: int,
    min_speedup: float = 0.0,
) -> QuantizationReport:
    """Run the check set through both; the candidate serves if every output is ε-close
    (and it is at least ``min_speedup`` times as fast)."""
    samples = next(iter(check.values())).shape[0]
    step = max(1, batch) if batch else 1
    chunks = [
        {name: array[start : start + step] for name, array in check.items()}
        for start in range(0, samples, step)
    ]
    ref_time, ref_out = _timed(reference, chunks)
    cand_time, cand_out = _timed(candidate, chunks)
    max_error = 0.0
    agree = total = 0
    for ref_chunk, cand_chunk in zip(ref_out, cand_out, strict=True):
        for name, ref_value in ref_chunk.items():
            cand_value = cand_chunk[name]
            max_error = max(max_error, float(np.max(np.abs(ref_value - cand_value))))
            if ref_value.ndim >= 2:
                same = np.argmax(ref_value, axis=-1) == np.argmax(cand_value, axis=-1)
                agree += int(np.sum(same))
                total += same.size
    agreement = round(agree / total, 4) if total else None
    speedup = round(ref_time / cand_time, 2) if cand_time > 0 else None
    within = max_error <= epsilon
    fast_enough = speedup is not None and speedup >= min_speedup
    served = within and fast_enough
    if not within:
        reason = (
            f"int8 breaks ε: max |error| {max_error:.5f} > {epsilon} on the check set; "
            "serving float"
        )
    elif not fast_enough:
        reason = (
            f"int8 is within ε (max |error| {max_error:.5f} <= {epsilon}) but runs at "
            f"x{speedup} of float's speed here (needs x{min_speedup}); serving float"
        )
    else:
        reason = f"int8 within ε: max |error| {max_error:.5f} <= {epsilon}, x{speedup} faster"
    return QuantizationReport(
        served=served,
        reason=reason,
        epsilon=epsilon,
        max_abs_error=round(max_error, 6),
        agreement=agreement,
        speedup=speedup,
        samples=samples,
    )


def _timed(
    model: ModelVersion, chunks: list[dict[str, np.ndarray[Any, Any]]]
) -> tuple[float, list[dict[str, np.ndarray[Any, Any]]]]:
    """Outputs for every chunk, and the best of a few timings of the whole set."""
    outputs = [model.run(chunk) for chunk in chunks]  # also warms the session up
    best = float("inf")
    for _ in range(_TIMING_ROUNDS):
        started = time.perf_counter()
        for chunk in chunks:
            model.run(chunk)
        best = min(best, time.perf_counter() - started)
    return best, outputs
