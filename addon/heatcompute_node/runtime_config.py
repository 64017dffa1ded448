"""What the node may run, changeable at run time from Home Assistant and persisted.

Settings (settings.py) are how the node was started; this is what a user switches while
it runs: the integration's switches and max-power number write here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
import json
import logging
import math
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class ConfigError(ValueError):
    """A config change that can't be applied; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    serve_requests: bool = True
    """Answer interactive requests (voice, chat, API)."""
    background_jobs: bool = True
    """Run deferrable jobs when heat is wanted (deadline-forced jobs run regardless)."""
    filler: bool = False
    """Run a filler workload when heat is wanted and no job is queued (opt-in)."""
    max_power_w: float

    def as_dict(self, max_power_limit_w: float) -> dict[str, Any]:
        return {**asdict(self), "max_power_limit_w": max_power_limit_w}


FIELD_NAMES = frozenset(f.name for f in fields(RuntimeConfig))


def apply_changes(
    config: RuntimeConfig, changes: dict[str, Any], *, max_power_limit_w: float
) -> RuntimeConfig:
    """Validate a partial update and return the new config (the old one is untouched)."""
    for name in ("serve_requests", "background_jobs", "filler"):
        if name in changes and not isinstance(changes[name], bool):
            raise ConfigError(name, f"{name} must be true or false")
    if "max_power_w" in changes:
        value = changes["max_power_w"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("max_power_w", "max_power_w must be a number of watts")
        if not math.isfinite(value) or not 0 < value <= max_power_limit_w:
            raise ConfigError(
                "max_power_w",
                f"max_power_w must be above 0 and at most {max_power_limit_w:g} W "
                f"(the node's configured limit), got {value}",
            )
        changes = {**changes, "max_power_w": float(value)}
    return replace(config, **{k: v for k, v in changes.items() if k in FIELD_NAMES})


def load_config(data_dir: Path, *, max_power_limit_w: float) -> RuntimeConfig:
    default = RuntimeConfig(max_power_w=max_power_limit_w)
    path = data_dir / CONFIG_FILE
    if not path.is_file():
        return default
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in raw.items() if k in FIELD_NAMES}
        # Re-validated: the limit may have been lowered since the file was written.
        if known.get("max_power_w", 0) > max_power_limit_w:
            known["max_power_w"] = max_power_limit_w
        return apply_changes(default, known, max_power_limit_w=max_power_limit_w)
    except (OSError, ValueError, AttributeError) as err:
        _LOGGER.warning("ignoring unreadable runtime config %s: %s", path, err)
        return default


def save_config(data_dir: Path, config: RuntimeConfig) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
