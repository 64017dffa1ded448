"""The requirements of the integration's tests on Home Assistant's current release.

    python scripts/ha_current_requirements.py NODE_REQS TEST_REQS HA_CONSTRAINTS > OUT

Writes one requirements file for scripts/test-ha-current's venv: the lines of TEST_REQS
(requirements/ha-current.txt), then the node's runtime requirements (NODE_REQS,
addon/requirements.txt) that TEST_REQS does not replace. A node pin of a package that
Home Assistant pins too (HA_CONSTRAINTS) is dropped, so Home Assistant's version is
installed: the tests run the node in-process beside it. A new node requirement thus
reaches both test venvs without being listed twice.
"""

from __future__ import annotations

from pathlib import Path
import re
import sys

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file, without comments and options."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def name_of(line: str) -> str:
    """The package a requirement line names, as written."""
    match = _NAME.match(line)
    if match is None:
        raise ValueError(f"not a requirement: {line!r}")
    return match.group(1)


def package(line: str) -> str:
    return canonical(name_of(line))


def pinned(constraints: str) -> set[str]:
    """The packages a constraints file pins to one version."""
    return {package(line) for line in requirement_lines(constraints) if "==" in line}


def merged(node: str, tests: str, constraints: str) -> list[str]:
    test_lines = requirement_lines(tests)
    replaced = {package(line) for line in test_lines}
    ha_pins = pinned(constraints)
    out = list(test_lines)
    for line in requirement_lines(node):
        name = package(line)
        if name in replaced:
            continue
        out.append(name_of(line) if name in ha_pins else line)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    node, tests, constraints = (Path(arg).read_text(encoding="utf-8") for arg in argv)
    print("\n".join(merged(node, tests, constraints)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
