"""The split plan: layers in proportion to free memory, ranges as llama.cpp assigns them."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatcompute_node.engines.llm.offload import Offload
from heatcompute_node.fleet.memory import available_bytes
from heatcompute_node.fleet.plan import DoesNotFitError, Holder, LayerRange, plan_split

MIB = 2**20


def _holders(*free_mib: int) -> list[Holder]:
    names = ["living", "kitchen", "attic"]
    return [
        Holder(
            node_id=f"n{i}",
            name=names[i],
            free_bytes=mib * MIB,
            endpoint=None if i == 0 else f"127.0.0.1:{5000 + i}",
        )
        for i, mib in enumerate(free_mib)
    ]


def _spans(plan_ranges: tuple[LayerRange, ...]) -> list[tuple[str, int, int]]:
    return [(r.name, r.first_layer, r.last_layer) for r in plan_ranges]


def test_equal_memory_splits_about_evenly() -> None:
    plan = plan_split(30, 145 * MIB, _holders(1000, 1000))
    assert _spans(plan.ranges) == [("living", 0, 15), ("kitchen", 16, 29)]
    assert plan.offload == Offload(servers=("127.0.0.1:5001",), gpu_layers=15, split=(0.5,))


def test_more_memory_holds_more_layers() -> None:
    plan = plan_split(30, 145 * MIB, _holders(300, 900))
    assert _spans(plan.ranges) == [("living", 0, 7), ("kitchen", 8, 29)]


def test_three_nodes_follow_llama_cpps_assignment() -> None:
    plan = plan_split(30, 145 * MIB, _holders(1000, 1000, 2000))
    assert _spans(plan.ranges) == [("living", 0, 7), ("kitchen", 8, 15), ("attic", 16, 29)]
    assert plan.offload is not None
    assert plan.offload.gpu_layers == 23  # 22 repeating layers and the output layer
    assert plan.offload.split == pytest.approx((0.25, 0.5))


def test_every_layer_is_held_once() -> None:
    for free in ((100, 5000), (5000, 100), (700, 300, 200), (1, 1, 1)):
        plan = plan_split(30, 1, _holders(*free))
        held = [layer for r in plan.ranges for layer in range(r.first_layer, r.last_layer + 1)]
        assert held == list(range(30)), free


def test_the_lead_alone() -> None:
    plan = plan_split(30, 145 * MIB, _holders(1000))
    assert plan.offload is None
    assert _spans(plan.ranges) == [("living", 0, 29)]


def test_too_little_memory_together() -> None:
    with pytest.raises(DoesNotFitError, match="needs 181 MiB"):
        plan_split(30, 145 * MIB, _holders(100, 80))


def test_offload_text_round_trip() -> None:
    offload = Offload(servers=("127.0.0.1:1", "127.0.0.1:2"), gpu_layers=12, split=(0.25, 0.5))
    assert Offload.parse(offload.text()) == offload
    for bad in ("", "x:127.0.0.1:1=1", "3:", "3:127.0.0.1:1=-1", "0:127.0.0.1:1=1"):
        with pytest.raises(ValueError, match=r"GPU_LAYERS|weights|server"):
            Offload.parse(bad)


def test_free_memory_is_the_machines_or_what_the_container_leaves(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 24000000 kB\nMemAvailable: 2000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert available_bytes(meminfo, cgroup) == 2000000 * 1024  # no container limit
    (cgroup / "memory.max").write_text(f"{1 << 30}\n")
    (cgroup / "memory.current").write_text(f"{768 << 20}\n")
    assert available_bytes(meminfo, cgroup) == 256 << 20  # the limit leaves less
    (cgroup / "memory.max").write_text("max\n")
    assert available_bytes(meminfo, cgroup) == 2000000 * 1024
    assert available_bytes(tmp_path / "missing", cgroup) == 0
