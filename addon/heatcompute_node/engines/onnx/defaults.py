"""The default ONNX models: where each comes from and the config it is served with.

rapidocr 3.10.0's wheel carries PP-OCRv6's text detector and recogniser and the
text-direction classifier; silero-vad 6.2.3's its voice-activity model. scripts/setup
lays the repository out from the installed packages (scripts/onnx_models.py), the add-on
image from the same files at build time (addon/bundle_models.py). Standalone (no imports
from the node) so the image's build can use it beside the node's package.
"""

from __future__ import annotations

from typing import Any

PEOPLE_FIRST = {"priority_levels": 2, "default_priority_level": 1}
CONFIGS: dict[str, dict[str, Any]] = {
    "text-detection": {
        # Images of different sizes never share a batch; same-sized snapshots do.
        "max_batch_size": 4,
        "dynamic_batching": {**PEOPLE_FIRST, "default_queue_policy": {"max_queue_size": 64}},
    },
    # The two small models run as two instances of one thread each, on the default two
    # engine threads (engine.instances: never more instances than threads): their
    # kernels cost the same per sample at batch 1 and batch 8 on one thread, and one
    # batch on two threads meets at a barrier per operator that costs more than that
    # (docs/benchmarks.md, the kernel's ceiling). No queue delay: a batch takes what
    # queued while the instances were busy, and a lone request never waits for company.
    "text-direction": {
        "max_batch_size": 64,
        "instance_count": 2,
        "dynamic_batching": {
            "preferred_batch_size": [4, 8],
            "max_queue_delay_microseconds": 0,
            **PEOPLE_FIRST,
            "default_queue_policy": {"max_queue_size": 1024},
        },
        "quantization": {"int8": True, "epsilon": 0.01, "check_set": "check.npz"},
    },
    # The recogniser's kernel gets dearer per sample as batches grow (3 MB of scores per
    # crop): small batches, of crops of the same width.
    "text-recognition": {
        "max_batch_size": 4,
        "instance_count": 2,
        "dynamic_batching": {
            "max_queue_delay_microseconds": 0,
            **PEOPLE_FIRST,
            "default_queue_policy": {"max_queue_size": 1024},
        },
    },
    # Stateful (its state tensor is [2, batch, 128]) and not batch-first: one at a time.
    "voice-activity": {
        "max_batch_size": 0,
        "dynamic_batching": {**PEOPLE_FIRST, "default_queue_policy": {"max_queue_size": 64}},
    },
}
SOURCES = {
    "text-detection": ("rapidocr", "models/PP-OCRv6_det_small.onnx"),
    "text-direction": ("rapidocr", "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
    "text-recognition": ("rapidocr", "models/PP-OCRv6_rec_small.onnx"),
    "voice-activity": ("silero_vad", "data/silero_vad.onnx"),
}

DIRECTION_CHECK_SET = "check.npz"
"""The int8 check set of the direction classifier: rendered by scripts/onnx_models.py
(it needs rapidocr's own code and Pillow); without it the model is served in float."""


def config_without_check_set(name: str) -> dict[str, Any]:
    """A model's config for a repository that has no int8 check set (the add-on image)."""
    return {key: value for key, value in CONFIGS[name].items() if key != "quantization"}
