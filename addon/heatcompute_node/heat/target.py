"""The heat target: how much heat Home Assistant wants from this node right now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

type HeatMode = Literal["off", "heat"]
HEAT_MODES: tuple[HeatMode, ...] = ("off", "heat")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatTarget:
    """``mode`` says whether heat is wanted at all; ``target_w`` how much, in W.

    "off" keeps the configured watts so switching back to "heat" resumes the same level,
    the way a thermostat remembers its set point.
    """

    mode: HeatMode = "off"
    target_w: float = 0.0
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def wanted(self) -> bool:
        """Heat is wanted while the demand is above zero."""
        return self.mode == "heat" and self.target_w > 0

    @property
    def effective_w(self) -> float:
        """The watts the governor should aim for."""
        return self.target_w if self.wanted else 0.0

    def as_dict(self, max_power_w: float) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "target_w": round(self.target_w, 1),
            "max_power_w": max_power_w,
            "wanted": self.wanted,
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
        }
