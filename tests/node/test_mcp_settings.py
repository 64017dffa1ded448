"""The MCP bridge's settings: the add-on's options (config.yaml schema and both
translations) match the node's settings, and the add-on's option shapes load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from heatcompute_node.settings import Settings, SettingsError, load_settings

ADDON = Path(__file__).resolve().parents[2] / "addon"


def test_every_addon_option_is_a_setting_and_translated() -> None:
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    fields = set(Settings.__dataclass_fields__)
    options = set(config["schema"])
    assert options <= fields, options - fields
    assert set(config["options"]) <= options
    for language in ("en", "de"):
        translated = yaml.safe_load((ADDON / "translations" / f"{language}.yaml").read_text())
        missing = {o for o in options if o.startswith("mcp_")} - set(translated["configuration"])
        assert not missing, (language, missing)
    assert "mcp" in config["discovery"]
    assert config["homeassistant_api"] is True


def test_addon_options_in_their_own_shapes_load(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps(
            {
                "mcp_folders": ["/share/documents", "/media/notes"],
                "mcp_databases": ["/share/inventory.db"],
                "mcp_recorder_db": "/homeassistant/home-assistant_v2.db",
                "mcp_tokens": [
                    {"name": "openwebui", "scopes": "files+databases", "token": "x" * 20}
                ],
                "mcp_trusted_networks": ["172.30.32.0/23"],
            }
        )
    )
    settings = load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(options)})
    assert settings.mcp_folders == (Path("/share/documents"), Path("/media/notes"))
    assert settings.mcp_recorder_db == Path("/homeassistant/home-assistant_v2.db")
    assert settings.mcp_tokens == (f"openwebui:files+databases:{'x' * 20}",)
    assert settings.mcp_trusted_networks == ("172.30.32.0/23",)


def test_flags_and_environment(tmp_path: Path) -> None:
    settings = load_settings(
        ["--mcp-folder", "/a", "--mcp-folder", "/b", "--mcp-token", f"cli:files:{'y' * 16}"],
        environ={"HEATCOMPUTE_MCP_DATABASES": "/x.db:/y.db", "HEATCOMPUTE_DATA_DIR": str(tmp_path)},
    )
    assert settings.mcp_folders == (Path("/a"), Path("/b"))
    assert settings.mcp_databases == (Path("/x.db"), Path("/y.db"))
    assert settings.mcp_tokens == (f"cli:files:{'y' * 16}",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mcp_tokens": ("no-colons",)}, "reads name:scope"),
        ({"mcp_tokens": ("a:files:short",)}, "shorter than 16"),
        ({"mcp_tokens": (f"a:root:{'z' * 16}",)}, "unknown MCP scope"),
        ({"mcp_trusted_networks": ("not-a-network",)}, "trusted network"),
        ({"mcp_ha_url": "http://ha:8123"}, "go together"),
        ({"mcp_call_timeout_s": 0.0}, "mcp_call_timeout_s"),
    ],
)
def test_bad_mcp_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**overrides)  # type: ignore[arg-type]
