"""RAPL power on recorded powercap trees (tests/fixtures/sysfs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatcompute_node.hardware.common import SourceUnavailable
from heatcompute_node.hardware.rapl import RaplSource, energy_delta_uj, find_zones
from tests.node.sysfs_machines import FIXTURES, deny, machine, write

RANGE_UJ = 262143328850


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def powercap(root: Path) -> Path:
    return root / "class" / "powercap"


def test_sums_packages_not_subzones_or_mmio() -> None:
    zones = find_zones(powercap(FIXTURES / "intel-desktop"))
    assert [(zone.path.name, zone.label) for zone in zones] == [("intel-rapl:0", "package-0")]
    assert zones[0].max_energy_range_uj == RANGE_UJ


def test_power_is_energy_delta_over_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = powercap(machine("intel-desktop", tmp_path, monkeypatch))
    clock = FakeClock()
    source = RaplSource(root, clock=clock)
    package = root / "intel-rapl:0" / "energy_uj"
    start = 48213904821

    write(package, start + 65_000_000)  # 65 J ...
    # ... while the subzones and the MMIO duplicate also move: they must not count.
    write(root / "intel-rapl:0:0" / "energy_uj", 30117724123 + 50_000_000)
    write(root / "intel-rapl-mmio:0" / "energy_uj", 48213899120 + 65_000_000)
    clock.now += 1.0
    assert source.read().power_w == pytest.approx(65.0)

    write(package, start + 65_000_000 + 30_000_000)
    clock.now += 0.5
    assert source.read().power_w == pytest.approx(60.0)


def test_first_read_measures_since_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the source takes the baseline; reading at the same instant has no interval."""
    root = powercap(machine("intel-desktop", tmp_path, monkeypatch))
    source = RaplSource(root, clock=FakeClock())
    reading = source.read()
    assert reading.power_w is None
    assert reading.temperatures_c == {}


def test_wraparound_uses_max_energy_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = powercap(machine("intel-desktop", tmp_path, monkeypatch))
    package = root / "intel-rapl:0" / "energy_uj"
    write(package, RANGE_UJ - 10_000_000)  # 10 J before the wrap
    clock = FakeClock()
    source = RaplSource(root, clock=clock)
    write(package, 40_000_000)  # and 40 J after it
    clock.now += 2.0
    assert source.read().power_w == pytest.approx(25.0)


def test_energy_delta_rules() -> None:
    assert energy_delta_uj(5, 9, 100) == 4
    assert energy_delta_uj(90, 10, 100) == 20
    assert energy_delta_uj(90, 10, None) is None  # unknown range: unknowable, not 0 W
    assert energy_delta_uj(150, 10, 100) is None  # value beyond the range: a reset


def test_dram_counts_and_psys_stands_alone(tmp_path: Path) -> None:
    """DRAM is outside the package domain; psys already contains everything."""
    root = tmp_path / "powercap"
    zones = {
        "intel-rapl:0": "package-0",
        "intel-rapl:0:0": "core",
        "intel-rapl:0:1": "dram",
        "intel-rapl:1": "package-1",
    }
    for zone, label in zones.items():
        (root / zone).mkdir(parents=True)
        (root / zone / "name").write_text(label + "\n")
        write(root / zone / "energy_uj", 1)
    assert [zone.label for zone in find_zones(root)] == ["package-0", "dram", "package-1"]

    (root / "intel-rapl:2").mkdir()
    (root / "intel-rapl:2" / "name").write_text("psys\n")
    write(root / "intel-rapl:2" / "energy_uj", 1)
    assert [zone.label for zone in find_zones(root)] == ["psys"]


def test_amd_rapl_naming(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    for zone in ("amd-rapl:0", "amd-rapl:0:0"):
        (root / zone).mkdir(parents=True)
        write(root / zone / "energy_uj", 1000)
    (root / "amd-rapl:0" / "name").write_text("package-0\n")
    (root / "amd-rapl:0:0" / "name").write_text("core\n")
    clock = FakeClock()
    source = RaplSource(root, clock=clock)
    assert source.zone_labels == ["package-0"]
    write(root / "amd-rapl:0" / "energy_uj", 1000 + 3_000_000)
    clock.now += 0.1
    assert source.read().power_w == pytest.approx(30.0)


def test_unreadable_counter_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = powercap(machine("locked-laptop", tmp_path, monkeypatch))
    with pytest.raises(SourceUnavailable, match="permission denied"):
        RaplSource(root)


def test_missing_powercap_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no RAPL package zone"):
        RaplSource(tmp_path / "nothing-here")


def test_counter_lost_after_detection_reads_none_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = powercap(machine("intel-desktop", tmp_path, monkeypatch))
    clock = FakeClock()
    source = RaplSource(root, clock=clock)
    package = root / "intel-rapl:0" / "energy_uj"
    with monkeypatch.context() as patch:
        deny([package], patch)
        clock.now += 1.0
        assert source.read().power_w is None
    package.chmod(0o644)
    write(package, 48213904821 + 80_000_000)
    clock.now += 1.0
    # Measured over both seconds: the baseline survived the failed read.
    assert source.read().power_w == pytest.approx(40.0)
