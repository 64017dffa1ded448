"""The Home Assistant API compatibility check (scripts/ha_compat_check.py) on small trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.ha_compat_check import main


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A release's tree: one module this Python parses, one it cannot (3.14 syntax)."""
    source = tmp_path / "release"
    write(
        source,
        {
            "homeassistant/__init__.py": "",
            "homeassistant/helpers/__init__.py": "",
            "homeassistant/helpers/llm.py": (
                "from typing import TYPE_CHECKING\n"
                "LLM_API_ASSIST = 'assist'\n"
                "type ToolName = str\n"
                "def async_get_api(): ...\n"
                "if TYPE_CHECKING:\n    from x import ChatLog\n"
            ),
            "homeassistant/helpers/intent.py": (
                "class IntentResponse:\n    pass\n"
                "try:\n    pass\nexcept ValueError, TypeError:\n    pass\n"
            ),
            "homeassistant/components/zeroconf/__init__.py": "",
        },
    )
    return source


def test_names_that_exist_pass(
    tmp_path: Path, release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path / "component",
        {
            "agent.py": (
                "from homeassistant.helpers import llm, intent\n"
                "from homeassistant.helpers.llm import LLM_API_ASSIST, ToolName, ChatLog\n"
                "from homeassistant.helpers.intent import IntentResponse\n"
                "import homeassistant.components.zeroconf\n"
            )
        },
    )
    assert main([str(tmp_path / "component"), str(release)]) == 0
    assert "ha compat: 7/7 imported names exist" in capsys.readouterr().out


def test_a_removed_name_or_module_fails(
    tmp_path: Path, release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path / "component",
        {
            "agent.py": "from homeassistant.helpers.llm import AssistAPI, async_get_api\n",
            "flow.py": (
                "from homeassistant.components.zeroconf import ZeroconfServiceInfo\n"
                "from homeassistant.helpers.intent import IntentResponseType\n"
                "import homeassistant.components.ai_task\n"
            ),
        },
    )
    assert main([str(tmp_path / "component"), str(release)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "missing: agent.py: homeassistant.helpers.llm.AssistAPI",
        "missing: flow.py: homeassistant.components.zeroconf.ZeroconfServiceInfo",
        "missing: flow.py: homeassistant.helpers.intent.IntentResponseType",
        "missing: flow.py: module homeassistant.components.ai_task",
    ]
    assert "ha compat: 1/5 imported names exist" in out


def test_a_folder_that_is_no_release_is_refused(tmp_path: Path) -> None:
    assert main([str(tmp_path), str(tmp_path)]) == 2
