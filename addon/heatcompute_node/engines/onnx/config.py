"""A model's small config (``config.json`` in its folder), in Triton's own field names.

The file holds only what the model file can't tell: batching, queue policy, versions and
the int8 check. Inputs and outputs (names, dtypes, shapes) are read from the model
itself. The same fields, in the same JSON shape, come back from
``GET /v2/models/<name>/config``, so a Triton user reads them as they know them::

    {
      "max_batch_size": 32,
      "dynamic_batching": {
        "preferred_batch_size": [8, 16, 32],
        "max_queue_delay_microseconds": 2000,
        "priority_levels": 2,
        "default_priority_level": 1,
        "default_queue_policy": {"max_queue_size": 256, "timeout_action": "REJECT",
                                 "default_timeout_microseconds": 0,
                                 "allow_timeout_override": true}
      },
      "version_policy": {"latest": {"num_versions": 1}},
      "quantization": {"int8": true, "epsilon": 0.01, "check_set": "check.npz"}
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import re
from typing import Any, Literal

CONFIG_FILE_NAME = "config.json"
type TimeoutAction = Literal["REJECT", "DELAY"]
_CONFIG_FIELDS = frozenset(
    {"name", "max_batch_size", "dynamic_batching", "version_policy", "instance_count"}
    | {"quantization", "parameters"}
)


class ConfigError(ValueError):
    """A model's config can't be used; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePolicy:
    """Triton's ModelQueuePolicy for one priority level."""

    max_queue_size: int = 0
    """Requests waiting at this level beyond which new ones are refused (0: no bound)."""
    default_timeout_us: int = 0
    """How long a request may wait before it is timed out (0: forever)."""
    timeout_action: TimeoutAction = "REJECT"
    """REJECT: a timed-out request fails (503); DELAY: it waits behind all the others."""
    allow_timeout_override: bool = True
    """Whether a request's own ``timeout`` parameter replaces the default."""

    def as_json(self) -> dict[str, Any]:
        return {
            "max_queue_size": self.max_queue_size,
            "default_timeout_microseconds": self.default_timeout_us,
            "timeout_action": self.timeout_action,
            "allow_timeout_override": self.allow_timeout_override,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicBatching:
    """Triton's ModelDynamicBatching: how requests are merged into batches."""

    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    priority_levels: int = 0
    """Levels 1..N, 1 first. 0 means one level (1)."""
    default_priority_level: int = 0
    default_queue_policy: QueuePolicy = field(default_factory=QueuePolicy)
    priority_queue_policy: Mapping[int, QueuePolicy] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        return max(1, self.priority_levels)

    @property
    def default_level(self) -> int:
        return self.default_priority_level or 1

    def policy(self, level: int) -> QueuePolicy:
        return self.priority_queue_policy.get(level, self.default_queue_policy)

    def as_json(self) -> dict[str, Any]:
        return {
            "preferred_batch_size": list(self.preferred_batch_size),
            "max_queue_delay_microseconds": self.max_queue_delay_us,
            "priority_levels": self.priority_levels,
            "default_priority_level": self.default_priority_level,
            "default_queue_policy": self.default_queue_policy.as_json(),
            "priority_queue_policy": {
                str(level): policy.as_json() for level, policy in self.priority_queue_policy.items()
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionPolicy:
    """Which numbered versions are served: the latest N, all, or a specific list."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, available: list[int]) -> list[int]:
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.num_versions :]

    def as_json(self) -> dict[str, Any]:
        if self.kind == "all":
            return {"all": {}}
        if self.kind == "specific":
            return {"specific": {"versions": list(self.versions)}}
        return {"latest": {"num_versions": self.num_versions}}


@dataclass(frozen=True, slots=True, kw_only=True)
class Quantization:
    """The int8 variant: made by onnxruntime's dynamic quantisation, served only if its
    outputs stay within ``epsilon`` of the float model's on the stored check set."""

    int8: bool = False
    epsilon: float = 0.01
    check_set: str = "check.npz"
    min_speedup: float = 1.0
    """An ε-close int8 variant that is slower than this (float time / int8 time) is not
    worth serving: int8 kernels lose to float ones on some CPUs and small models."""

    def as_json(self) -> dict[str, Any]:
        return {
            "int8": self.int8,
            "epsilon": self.epsilon,
            "check_set": self.check_set,
            "min_speedup": self.min_speedup,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    name: str
    max_batch_size: int = 0
    """0: the model has no batch axis the node may use; requests run one at a time."""
    dynamic_batching: DynamicBatching | None = None
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    instance_count: int = 1
    """Batches of this model computed at once (each on the engine's threads)."""
    quantization: Quantization = field(default_factory=Quantization)
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def batching(self) -> DynamicBatching:
        """The batcher's settings; a model without ``dynamic_batching`` still queues."""
        return self.dynamic_batching or DynamicBatching()

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "max_batch_size": self.max_batch_size,
            "version_policy": self.version_policy.as_json(),
            "instance_group": [{"count": self.instance_count, "kind": "KIND_CPU"}],
            "quantization": self.quantization.as_json(),
            "parameters": {k: {"string_value": v} for k, v in self.parameters.items()},
        }
        if self.dynamic_batching is not None:
            body["dynamic_batching"] = self.dynamic_batching.as_json()
        return body


WHOLE_NUMBER = re.compile(r"-?[0-9]+")


WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A load request's config replaces the file's top-level fields it names (Triton)."""
    return {**base, **override}


def parse_config(raw: Mapping[str, Any], *, name: str) -> ModelConfig:
    unknown = sorted(set(raw) - _CONFIG_FIELDS)
    if unknown:
        raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
    if raw.get("name", name) != name:
        raise ConfigError(f"config name {raw['name']!r} differs from the folder name {name!r}")
    max_batch = _int(raw, "max_batch_size", 0, low=0)
    batching = None
    if raw.get("dynamic_batching") is not None:
        batching = _batching(_object(raw, "dynamic_batching"), max_batch)
    params = raw.get("parameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise ConfigError("parameters must be an object of strings")
    return ModelConfig(
        name=name,
        max_batch_size=max_batch,
        dynamic_batching=batching,
        version_policy=_version_policy(raw.get("version_policy")),
        instance_count=_int(raw, "instance_count", 1, low=1),
        quantization=_quantization(raw.get("quantization")),
        parameters=dict(params),
    )


def _batching(raw: Mapping[str, Any], max_batch: int) -> DynamicBatching:
    preferred = raw.get("preferred_batch_size", [])
    if not isinstance(preferred, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in preferred
    ):
        raise ConfigError("dynamic_batching.preferred_batch_size must be a list of sizes >= 1")
    if max_batch and any(size > max_batch for size in preferred):
        raise ConfigError("a preferred_batch_size is larger than max_batch_size")
    levels = _int(raw, "priority_levels", 0, low=0)
    default_level = _int(raw, "default_priority_level", 0, low=0)
    if default_level > max(1, levels):
        raise ConfigError("default_priority_level must be within priority_levels")
    per_level: dict[int, QueuePolicy] = {}
    for key, value in _object(raw, "priority_queue_policy").items():
        try:
            level = int(key)
        except ValueError as err:
            raise ConfigError(f"priority_queue_policy key {key!r} is not a level") from err
        if not 1 <= level <= max(1, levels):
            raise ConfigError(f"priority_queue_policy level {level} is not within the levels")
        per_level[level] = _queue_policy(value)
    return DynamicBatching(
        preferred_batch_size=tuple(sorted(set(preferred))),
        max_queue_delay_us=_int(raw, "max_queue_delay_microseconds", 0, low=0),
        priority_levels=levels,
        default_priority_level=default_level,
        default_queue_policy=_queue_policy(raw.get("default_queue_policy", {})),
        priority_queue_policy=per_level,
    )


def _queue_policy(raw: Any) -> QueuePolicy:
    if not isinstance(raw, dict):
        raise ConfigError("a queue policy must be an object")
    action = raw.get("timeout_action", "REJECT")
    if action not in ("REJECT", "DELAY"):
        raise ConfigError("timeout_action must be REJECT or DELAY")
    override = raw.get("allow_timeout_override", True)
    if not isinstance(override, bool):
        raise ConfigError("allow_timeout_override must be true or false")
    return QueuePolicy(
        max_queue_size=_int(raw, "max_queue_size", 0, low=0),
        default_timeout_us=_int(raw, "default_timeout_microseconds", 0, low=0),
        timeout_action=action,
        allow_timeout_override=override,
    )


def _version_policy(raw: Any) -> VersionPolicy:
    if raw is None:
        return VersionPolicy()
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ConfigError("version_policy must be one of latest, all, specific")
    [(kind, body)] = raw.items()
    if kind == "all":
        return VersionPolicy(kind="all")
    if not isinstance(body, dict):
        raise ConfigError(f"version_policy.{kind} must be an object")
    if kind == "latest":
        return VersionPolicy(kind="latest", num_versions=_int(body, "num_versions", 1, low=1))
    if kind == "specific":
        versions = body.get("versions")
        if (
            not isinstance(versions, list)
            or not versions
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions)
        ):
            raise ConfigError("version_policy.specific.versions must list version numbers")
        return VersionPolicy(kind="specific", versions=tuple(versions))
    raise ConfigError("version_policy must be one of latest, all, specific")


def _quantization(raw: Any) -> Quantization:
    if raw is None:
        return Quantization()
    if not isinstance(raw, dict):
        raise ConfigError("quantization must be an object")
    int8 = raw.get("int8", False)
    epsilon = raw.get("epsilon", 0.01)
    check_set = raw.get("check_set", "check.npz")
    if not isinstance(int8, bool):
        raise ConfigError("quantization.int8 must be true or false")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon <= 0:
        raise ConfigError("quantization.epsilon must be a positive number")
    if not isinstance(check_set, str) or "/" in check_set or not check_set:
        raise ConfigError("quantization.check_set must be a file name in the model's folder")
    speedup = raw.get("min_speedup", 1.0)
    if isinstance(speedup, bool) or not isinstance(speedup, int | float) or speedup < 0:
        raise ConfigError("quantization.min_speedup must be a number >= 0")
    return Quantization(
        int8=int8, epsilon=float(epsilon), check_set=check_set, min_speedup=float(speedup)
    )


def _object(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be an object")
    return value


def _int(raw: Mapping[str, Any], name: str, default: int, *, low: int) -> int:
    value = raw.get(name, default)
    # Triton's JSON prints 64-bit fields as strings. ASCII digits only: str.isdigit()
    # takes "²", which int() refuses.
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)
