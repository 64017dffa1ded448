"""The dashboard's history on disk, so its chart outlives a restart.

One small JSON file in the node's data directory (``dashboard_history.json``, ~100 kB
for a full day), written every few minutes and when the node stops, atomically (a temp
file, fsync, rename): a crash leaves the previous file, never half a file. A file that
can't be read is set aside and the chart starts empty; the node starts either way.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

FILE_NAME = "dashboard_history.json"
SAVE_INTERVAL_S = 300.0
"""How often the minute means are written: at most five minutes of chart are lost to a
power cut, and an SD card sees 288 small writes a day."""


class HistoryFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def load(self) -> dict[str, Any] | None:
        """What was saved; None when nothing was, or it can't be read (then set aside)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            _LOGGER.warning("dashboard history %s unreadable, starting empty: %s", self.path, err)
            self._set_aside()
            return None
        if not isinstance(data, dict):
            _LOGGER.warning("dashboard history %s is not an object, starting empty", self.path)
            self._set_aside()
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as file:
            json.dump(data, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, self.path)

    def _set_aside(self) -> None:
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".unreadable"))
        except OSError as err:
            _LOGGER.warning("cannot set %s aside: %s", self.path, err)
