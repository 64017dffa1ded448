"""scripts/test's closing lines: one per pytest session, then the total."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.test_summary import main


def report(path: Path, name: str, tests: int, failures: int, skipped: int) -> str:
    path.write_text(
        f'<testsuites><testsuite name="{name}" tests="{tests}" failures="{failures}"'
        f' errors="0" skipped="{skipped}"/></testsuites>',
        encoding="utf-8",
    )
    return str(path)


def test_each_release_gets_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [
        report(tmp_path / "a.xml", "node", 300, 0, 1),
        report(tmp_path / "b.xml", "integration on Home Assistant 2025.4.4", 150, 0, 0),
        report(tmp_path / "c.xml", "integration on Home Assistant 2026.10.4", 150, 2, 0),
    ]
    assert main(paths) == 1
    assert capsys.readouterr().out.splitlines() == [
        "node: 299 passed, 0 failed, 1 skipped",
        "integration on Home Assistant 2025.4.4: 150 passed, 0 failed, 0 skipped",
        "integration on Home Assistant 2026.10.4: 148 passed, 2 failed, 0 skipped",
        "tests: 597 passed, 2 failed, 1 skipped",
    ]


def test_a_session_without_a_report_fails(tmp_path: Path) -> None:
    assert main([report(tmp_path / "a.xml", "node", 3, 0, 0)]) == 0
    assert main([report(tmp_path / "a.xml", "node", 3, 0, 0), str(tmp_path / "gone.xml")]) == 1
