"""The heat meter: a monotonic kWh counter that survives restarts and crashes.

Energy drawn is heat delivered, so integrating measured power gives the heat the node
has put into the room, and the part of it that was wanted (heat demand > 0): their
ratio is the heat reuse. Home Assistant's energy dashboard treats the counter as
``total_increasing``, so it must never go backwards: a reset would read as a meter
swap, and a lower value as negative consumption.

On disk: one small JSON file, replaced atomically (temp file, fsync, rename), with the
previous good version kept as ``<name>.bak``. A crash (even SIGKILL or power loss) loses
at most the energy since the last flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
import math
import os
from pathlib import Path
import threading
from typing import Any

_LOGGER = logging.getLogger(__name__)

STATE_FILE_NAME = "energy.json"
STATE_VERSION = 1
J_PER_KWH = 3.6e6


class InvalidState(ValueError):  # noqa: N818 - reads better at the raise site
    """A state file that parses but cannot be trusted, or does not parse."""


@dataclass(frozen=True, slots=True)
class EnergyState:
    """What the state file holds."""

    total_kwh: float
    wanted_kwh: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "total_kwh": self.total_kwh,
                "wanted_kwh": self.wanted_kwh,
                # For people reading the file; loading does not depend on it.
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    @classmethod
    def parse(cls, text: str) -> EnergyState:
        """Parse and validate; raises :class:`InvalidState`."""
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidState(f"not JSON ({err.msg})") from err
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise InvalidState("not a version 1 energy state")
        total, wanted = _count(raw, "total_kwh"), _count(raw, "wanted_kwh")
        if wanted > total * (1 + 1e-9) + 1e-12:
            raise InvalidState("wanted energy exceeds total energy")
        return cls(total_kwh=total, wanted_kwh=wanted)


def _count(raw: dict[str, Any], key: str) -> float:
    value = raw.get(key)
    # bool is an int, and a NaN or negative count is no count at all.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidState(f"{key} is missing or not a number")
    if not math.isfinite(value) or value < 0:
        raise InvalidState(f"{key} = {value} is not a count")
    return float(value)


class EnergyCounter:
    """Integrates power samples into kWh (total and wanted) and persists them.

    Samples are added by one task (the node's sampler); writes (``maybe_flush``,
    ``flush``, ``close``) run on a worker thread, one at a time under a lock: a flush
    still running when the node stops must not meet the closing one in the temp file.
    """

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_s: float = 10.0,
        max_gap_s: float = 60.0,
    ) -> None:
        """Load the counter from ``path`` (a new one starts at zero).

        ``max_gap_s``: samples further apart than this are not integrated: after a
        suspend or a stalled loop the power in between is unknown, not the last value.
        """
        if flush_interval_s < 0 or max_gap_s <= 0:
            raise ValueError("flush_interval_s must be >= 0 and max_gap_s > 0")
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.max_gap_s = max_gap_s
        self._backup = path.with_name(path.name + ".bak")
        self._temp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        state, self._main_is_good = self._load()
        self._total_kwh, self._wanted_kwh = state.total_kwh, state.wanted_kwh
        self._previous: tuple[float, float] | None = None
        self._dirty = False
        self._last_flush: float | None = None
        self._flush_failing = False
        self._closed = False
        self._write_lock = threading.Lock()

    @property
    def total_kwh(self) -> float:
        """All energy drawn, in kWh."""
        return self._total_kwh

    @property
    def wanted_kwh(self) -> float:
        """Energy drawn while heat was wanted, in kWh."""
        return self._wanted_kwh

    @property
    def reuse(self) -> float | None:
        """Share of the energy that was wanted heat; None before any energy."""
        return self._wanted_kwh / self._total_kwh if self._total_kwh > 0 else None

    def add_sample(self, power_w: float | None, now: float, wanted: bool = False) -> None:
        """Add a power sample taken at monotonic time ``now``.

        The energy since the previous sample is the trapezoid of the two powers.
        ``wanted`` says whether heat was wanted over that interval (the one this sample
        closes). An unknown power (None) breaks the chain rather than counting as 0 W.
        """
        if power_w is None or not math.isfinite(power_w):
            self._previous = None
            return
        power_w = max(power_w, 0.0)  # a meter's noise below zero is not energy given back
        if self._previous is not None:
            last_time, last_power = self._previous
            elapsed = now - last_time
            if elapsed == 0:
                return
            if 0 < elapsed <= self.max_gap_s:
                kwh = (last_power + power_w) / 2 * elapsed / J_PER_KWH
                self._total_kwh += kwh
                if wanted:
                    self._wanted_kwh += kwh
                self._dirty = True
        self._previous = (now, power_w)

    def maybe_flush(self, now: float) -> bool:
        """Write the state if it changed and ``flush_interval_s`` has passed.

        Returns whether it wrote. A failing disk is logged (once per failure streak)
        and retried on the next call; counting goes on in memory.
        """
        if not self._dirty:
            return False
        if self._last_flush is not None and now - self._last_flush < self.flush_interval_s:
            return False
        self._last_flush = now
        try:
            self.flush()
        except OSError as err:
            if not self._flush_failing:
                _LOGGER.error("cannot write energy state %s: %s", self.path, err)
            self._flush_failing = True
            return False
        if self._flush_failing:
            _LOGGER.info("energy state %s written again", self.path)
            self._flush_failing = False
        return True

    def flush(self) -> None:
        """Write the state now: atomically, keeping the previous file as backup."""
        with self._write_lock:
            self._flush()

    def _flush(self) -> None:
        data = EnergyState(self._total_kwh, self._wanted_kwh).to_json().encode()
        with self._temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # Only a file known to be good may become the backup: rotating a corrupt one
        # would destroy the backup it was recovered from.
        if self._main_is_good and self.path.exists():
            os.replace(self.path, self._backup)
        os.replace(self._temp, self.path)
        _fsync_directory(self.path.parent)
        self._main_is_good = True
        self._dirty = False

    def close(self) -> None:
        """Flush what is left. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._dirty:
            try:
                self.flush()
            except OSError as err:
                _LOGGER.error("cannot write energy state %s on close: %s", self.path, err)

    def _load(self) -> tuple[EnergyState, bool]:
        """The state to start from, and whether the main file holds it."""
        found: dict[Path, EnergyState] = {}
        problems: dict[Path, str] = {}
        # A complete temp file is left only by a crash between fsync and rename: it is
        # the newest good state there is, so it is a candidate too.
        for path in (self.path, self._backup, self._temp):
            try:
                found[path] = EnergyState.parse(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError, InvalidState) as err:
                problems[path] = str(err)

        # A broken temp file alone is a first flush cut short: nothing was lost yet.
        problems.pop(self._temp, None)
        if not found:
            if problems:
                for path in problems:
                    _set_aside(path)
                _LOGGER.error(
                    "energy state unusable (%s), no good backup: starting from 0 kWh; "
                    "the bad files are kept as *.corrupt",
                    "; ".join(f"{path.name}: {problem}" for path, problem in problems.items()),
                )
            return EnergyState(0.0, 0.0), False

        # Never go backwards: the highest good value wins.
        best_path = max(found, key=lambda path: found[path].total_kwh)
        best = found[best_path]
        main = found.get(self.path)
        if main is not None and main.total_kwh >= best.total_kwh:
            return main, True
        if self.path in problems:
            _set_aside(self.path)
            reason = f"unreadable ({problems[self.path]})"
        elif main is None:
            reason = "missing"
        else:
            reason = f"behind {best_path.name} ({main.total_kwh} < {best.total_kwh} kWh)"
        _LOGGER.warning(
            "energy state %s is %s: recovered %.6f kWh from %s",
            self.path,
            reason,
            best.total_kwh,
            best_path.name,
        )
        return best, main is not None


def _set_aside(path: Path) -> None:
    """Keep a bad file for a human to look at, out of the way of the next flush."""
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except OSError as err:
        _LOGGER.debug("cannot set %s aside: %s", path, err)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (ext4 may otherwise lose it on power loss)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename still happened
    finally:
        os.close(fd)
