"""The node's memory as the status reports it: the machine's, or its container's limit."""

from __future__ import annotations

import os
from pathlib import Path

from heatcompute_node.memory import total_memory_bytes

from .conftest import NodeClient, auth

MACHINE = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_without_a_cgroup_limit_the_machine_counts(tmp_path: Path) -> None:
    assert total_memory_bytes(tmp_path) == MACHINE
    (tmp_path / "memory.max").write_text("max\n")  # cgroup v2: no limit
    assert total_memory_bytes(tmp_path) == MACHINE


def test_a_container_limit_below_the_machine_wins(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text(f"{2 << 30}\n")
    assert total_memory_bytes(tmp_path) == 2 << 30


def test_a_cgroup_v1_limit_counts_and_its_no_limit_does_not(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    limit = tmp_path / "memory" / "memory.limit_in_bytes"
    limit.write_text("9223372036854771712\n")  # v1's "no limit"
    assert total_memory_bytes(tmp_path) == MACHINE
    limit.write_text(f"{1 << 30}\n")
    assert total_memory_bytes(tmp_path) == 1 << 30


async def test_the_status_reports_it(client: NodeClient) -> None:
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["memory_bytes"] == total_memory_bytes()
    assert status["memory_bytes"] > 0
