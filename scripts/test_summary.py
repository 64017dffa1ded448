"""Add up the JUnit reports of scripts/test's pytest sessions: a line per session (the
integration's on each Home Assistant release), the API fuzzing's counts
(scripts/api_fuzz.py), then the total as the closing line."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import sys
from xml.etree import ElementTree as ET


@dataclass(slots=True)
class Counts:
    tests: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped

    def add(self, other: Counts) -> None:
        self.tests += other.tests
        self.failed += other.failed
        self.skipped += other.skipped

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def read_report(path: Path) -> tuple[str, Counts]:
    """The session's name (pytest's junit_suite_name) and its counts."""
    root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
    counts = Counts()
    names = []
    for suite in root.iter("testsuite"):
        names.append(suite.get("name", path.stem))
        counts.tests += int(suite.get("tests", 0))
        counts.failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts.skipped += int(suite.get("skipped", 0))
    return ", ".join(names) or path.stem, counts


def fuzz_summary(path: Path) -> int:
    """Print the fuzzing's line; 1 when it failed or did not finish."""
    if not path.exists():
        print("schemathesis: no result (the fuzzing step did not finish)")
        return 1
    summary = json.loads(path.read_text())
    seeds = ", ".join(f"seed {r['seed']}: {r['cases']}" for r in summary["runs"])
    print(
        f"schemathesis: {summary['cases']} cases ({seeds}), {summary['failures']} failures, "
        f"{summary['server_errors']} server errors"
    )
    return 1 if summary["failures"] or summary["server_errors"] else 0


def main(args: list[str]) -> int:
    fuzz_failed = 0
    if "--fuzz" in args:
        at = args.index("--fuzz")
        fuzz_failed = fuzz_summary(Path(args[at + 1]))
        args = args[:at] + args[at + 2 :]
    return max(junit_summary(args), fuzz_failed)


def junit_summary(paths: list[str]) -> int:
    total = Counts()
    missing = False
    for path in map(Path, paths):
        if not path.exists():
            # A session that did not get as far as writing its report has failed.
            print(f"{path}: no report")
            missing = True
            continue
        name, counts = read_report(path)
        print(f"{name}: {counts}")
        total.add(counts)
    print(f"tests: {total}")
    return 1 if total.failed or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
