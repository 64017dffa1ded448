"""Add up the JUnit reports of scripts/test's pytest sessions into one closing line,
and the API fuzzing's counts (scripts/api_fuzz.py) into another."""

from __future__ import annotations

import json
from pathlib import Path
import sys
from xml.etree import ElementTree as ET


def main(args: list[str]) -> int:
    fuzz_failed = 0
    if "--fuzz" in args:
        at = args.index("--fuzz")
        fuzz_failed = fuzz_summary(Path(args[at + 1]))
        args = args[:at] + args[at + 2 :]
    return max(junit_summary(args), fuzz_failed)


def fuzz_summary(path: Path) -> int:
    if not path.exists():
        print("schemathesis: no result (the fuzzing step did not finish)")
        return 1
    summary = json.loads(path.read_text())
    seeds = ", ".join(f"seed {r['seed']}: {r['cases']}" for r in summary["runs"])
    print(
        f"schemathesis: {summary['cases']} cases ({seeds}), {summary['failures']} failures, "
        f"{summary['server_errors']} server errors"
    )
    return 1 if summary["failures"] else 0


def junit_summary(paths: list[str]) -> int:
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
