"""The energy counter: integration, persistence, recovery, and a SIGKILL mid-run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading

import pytest

from heatcompute_node.heat.accounting import EnergyCounter, EnergyState

ADDON = Path(__file__).resolve().parents[2] / "addon"


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "energy.json"


def write_state(path: Path, total_kwh: float, wanted_kwh: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EnergyState(total_kwh, wanted_kwh).to_json(), encoding="utf-8")


def test_constant_power_for_an_hour_is_exact(tmp_path: Path) -> None:
    counter = EnergyCounter(state_file(tmp_path))
    for second in range(3601):
        counter.add_sample(1000.0, 500.0 + second, wanted=True)
    assert counter.total_kwh == pytest.approx(1.0, rel=1e-12)
    assert counter.wanted_kwh == pytest.approx(1.0, rel=1e-12)
    assert counter.reuse == pytest.approx(1.0)


def test_trapezoid_between_samples(tmp_path: Path) -> None:
    counter = EnergyCounter(state_file(tmp_path))
    counter.add_sample(0.0, 0.0)
    counter.add_sample(100.0, 36.0)  # a ramp 0 → 100 W over 36 s: 1800 J
    assert counter.total_kwh == pytest.approx(1800 / 3.6e6)


def test_wanted_counts_the_interval_a_sample_closes(tmp_path: Path) -> None:
    counter = EnergyCounter(state_file(tmp_path))
    counter.add_sample(360.0, 0.0)
    counter.add_sample(360.0, 10.0, wanted=True)
    counter.add_sample(360.0, 20.0, wanted=False)
    assert counter.total_kwh == pytest.approx(2 * 3600 / 3.6e6)
    assert counter.wanted_kwh == pytest.approx(3600 / 3.6e6)
    assert counter.reuse == pytest.approx(0.5)


def test_gaps_unknown_and_negative_power(tmp_path: Path) -> None:
    counter = EnergyCounter(state_file(tmp_path), max_gap_s=30.0)
    assert counter.reuse is None
    counter.add_sample(100.0, 0.0)
    counter.add_sample(100.0, 3600.0)  # the machine was suspended: not integrated
    assert counter.total_kwh == 0.0
    counter.add_sample(None, 3601.0)  # unknown power breaks the chain ...
    counter.add_sample(100.0, 3602.0)  # ... so this one only starts a new one
    assert counter.total_kwh == 0.0
    counter.add_sample(100.0, 3602.0)  # the same instant again: nothing
    counter.add_sample(-40.0, 3612.0)  # noise below zero counts as 0 W
    assert counter.total_kwh == pytest.approx(50.0 * 10.0 / 3.6e6)
    counter.add_sample(float("nan"), 3613.0)
    counter.add_sample(-5.0, 3614.0)
    assert counter.total_kwh == pytest.approx(50.0 * 10.0 / 3.6e6)


def test_persists_across_instances(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    counter = EnergyCounter(path, flush_interval_s=10.0)
    counter.add_sample(3600.0, 0.0)
    counter.add_sample(3600.0, 1.0, wanted=True)  # 1 Wh
    assert counter.maybe_flush(1.0)
    counter.add_sample(3600.0, 2.0)
    assert not counter.maybe_flush(2.0)  # within the flush interval
    counter.close()
    counter.close()

    state = json.loads(path.read_text(encoding="utf-8"))
    assert state["version"] == 1
    assert state["total_kwh"] == pytest.approx(0.002)
    assert "updated_at" in state

    again = EnergyCounter(path)
    assert again.total_kwh == pytest.approx(0.002)
    assert again.wanted_kwh == pytest.approx(0.001)
    assert EnergyState.parse(path.with_name("energy.json.bak").read_text()).total_kwh == (
        pytest.approx(0.001)
    )


def test_nothing_to_flush_writes_nothing(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    counter = EnergyCounter(path)
    assert not counter.maybe_flush(100.0)
    counter.close()
    assert not path.exists()


@pytest.mark.parametrize(
    "damage",
    [
        '{"version": 1, "total_kwh": 12.5',  # cut short
        "\x00\x00\x00\x00",  # zeroed blocks after a power loss
        '{"version": 1, "total_kwh": -3.0, "wanted_kwh": 0.0}',
        '{"version": 1, "total_kwh": "many", "wanted_kwh": 0.0}',
        '{"version": 1, "total_kwh": 1.0, "wanted_kwh": 2.0}',
        "[]",
    ],
)
def test_corrupt_file_recovers_from_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = state_file(tmp_path)
    write_state(path.with_name("energy.json.bak"), 41.25, 30.0)
    path.write_text(damage, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        counter = EnergyCounter(path)
    assert counter.total_kwh == 41.25
    assert counter.wanted_kwh == 30.0
    assert any(
        record.levelno == logging.WARNING and "recovered" in record.getMessage()
        for record in caplog.records
    )

    # The bad file is set aside, and the next flush does not rotate it over the backup.
    assert path.with_name("energy.json.corrupt").read_text(encoding="utf-8") == damage
    counter.add_sample(3600.0, 0.0)
    counter.add_sample(3600.0, 1.0)
    counter.close()
    assert EnergyCounter(path).total_kwh == pytest.approx(41.251)
    assert EnergyState.parse(path.with_name("energy.json.bak").read_text()).total_kwh == 41.25


def test_both_corrupt_logs_error_and_starts_at_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("garbage", encoding="utf-8")
    path.with_name("energy.json.bak").write_text('{"total_kwh": -1}', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        counter = EnergyCounter(path)
    assert counter.total_kwh == 0.0
    assert counter.wanted_kwh == 0.0
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    # Kept for a human who may know the value.
    assert path.with_name("energy.json.corrupt").read_text(encoding="utf-8") == "garbage"
    assert path.with_name("energy.json.bak.corrupt").exists()


def test_never_goes_backwards(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A main file behind its backup (restored by hand, say) loses to the higher value."""
    path = state_file(tmp_path)
    write_state(path, 10.0)
    write_state(path.with_name("energy.json.bak"), 12.0)
    with caplog.at_level(logging.WARNING):
        assert EnergyCounter(path).total_kwh == 12.0
    assert "behind energy.json.bak" in caplog.text


def test_crash_between_renames_recovers_newest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed after the main file became the backup and before the new one was renamed."""
    path = state_file(tmp_path)
    write_state(path.with_name("energy.json.bak"), 5.0)
    write_state(path.with_name("energy.json.tmp"), 5.5)
    with caplog.at_level(logging.WARNING):
        counter = EnergyCounter(path)
    assert counter.total_kwh == 5.5
    assert "missing" in caplog.text
    counter.add_sample(0.0, 0.0)
    counter.add_sample(0.0, 1.0)
    counter.flush()
    assert EnergyCounter(path).total_kwh == 5.5


def test_cut_short_first_write_is_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.with_name("energy.json.tmp").write_text('{"vers', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert EnergyCounter(path).total_kwh == 0.0
    assert caplog.records == []


def test_write_failure_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = state_file(tmp_path)
    counter = EnergyCounter(path, flush_interval_s=0.0)
    blocker = path.with_name("energy.json.tmp")
    blocker.mkdir()  # the temp file cannot be created: like a full or read-only disk
    counter.add_sample(100.0, 0.0)
    counter.add_sample(100.0, 1.0)
    with caplog.at_level(logging.INFO):
        assert not counter.maybe_flush(1.0)
        assert not counter.maybe_flush(2.0)
        blocker.rmdir()
        assert counter.maybe_flush(3.0)
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.ERROR, logging.INFO]
    assert EnergyCounter(path).total_kwh == pytest.approx(100.0 / 3.6e6)


CHILD = """
import sys, time
from pathlib import Path
from heatcompute_node.heat.accounting import EnergyCounter

counter = EnergyCounter(Path(sys.argv[1]), flush_interval_s=0.05)
print("start", repr(counter.total_kwh), flush=True)
while True:
    now = time.monotonic()
    counter.add_sample(3.6e6, now)  # 1 kWh per second: every flush moves the counter
    if counter.maybe_flush(now):
        print(repr(counter.total_kwh), flush=True)
    time.sleep(0.001)
"""


def run_and_kill(path: Path, log: Path, flushes: int) -> tuple[float, list[float]]:
    """Run a counter in a child process; SIGKILL it after it reported ``flushes`` flushes."""
    env = {**os.environ, "PYTHONPATH": str(ADDON)}
    with log.open("ab") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        )
    # Only a guard against a hung child; the test itself waits on output, not on time.
    guard = threading.Timer(60.0, child.kill)
    guard.start()
    try:
        assert child.stdout is not None
        first = child.stdout.readline().split()
        assert first[:1] == ["start"], log.read_text()
        start = float(first[1])
        reported: list[float] = []
        while len(reported) < flushes:
            line = child.stdout.readline()
            assert line, f"child exited early: {log.read_text()}"
            reported.append(float(line))
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        guard.cancel()
        child.kill()
        if child.stdout is not None:
            child.stdout.close()
    return start, reported


def test_survives_a_killed_process(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    log = tmp_path / "child.log"

    start, reported = run_and_kill(path, log, flushes=6)
    assert start == 0.0
    assert reported == sorted(reported)
    assert reported[0] > 0
    recovered = EnergyCounter(path).total_kwh
    assert recovered >= reported[-1]

    # A second life on the same file starts where the first one's disk state left off.
    start, reported_again = run_and_kill(path, log, flushes=4)
    assert start >= recovered
    assert reported_again == sorted(reported_again)
    assert reported_again[0] > start
    assert EnergyCounter(path).total_kwh >= reported_again[-1]
