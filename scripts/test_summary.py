"""Add up the JUnit reports of scripts/test's pytest sessions into one closing line."""

from __future__ import annotations

from pathlib import Path
import sys
from xml.etree import ElementTree as ET


def main(paths: list[str]) -> int:
    tests = failed = skipped = 0
    for path in paths:
        root = ET.parse(Path(path)).getroot()  # noqa: S314 - our own pytest's output
        for suite in root.iter("testsuite"):
            tests += int(suite.get("tests", 0))
            failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped += int(suite.get("skipped", 0))
    passed = tests - failed - skipped
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
