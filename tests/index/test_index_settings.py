"""The index's settings: flags, environment, the add-on's options and their translations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from heatcompute_node.settings import Settings, SettingsError, load_settings

ADDON = Path(__file__).resolve().parents[2] / "addon"


def test_defaults_put_the_index_in_the_data_dir_and_need_a_shared_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.index_database_path == tmp_path / "index.sqlite3"
    assert settings.index_freshness_h == 24.0
    assert not settings.index_on  # nothing shared, nothing indexed
    assert Settings(data_dir=tmp_path, mcp_folders=(tmp_path,)).index_on
    assert not Settings(data_dir=tmp_path, mcp_folders=(tmp_path,), index_enabled=False).index_on


def test_flags_environment_and_addon_options(tmp_path: Path) -> None:
    settings = load_settings(
        ["--no-index", "--index-database", str(tmp_path / "i.db"), "--index-freshness-hours", "6"],
        environ={"HEATCOMPUTE_INDEX_MODEL": "all-MiniLM-L6-v2", "HEATCOMPUTE_INDEX_RESCAN_S": "60"},
    )
    assert (settings.index_enabled, settings.index_database) == (False, tmp_path / "i.db")
    assert (settings.index_freshness_h, settings.index_rescan_s) == (6.0, 60.0)
    assert settings.index_model == "all-MiniLM-L6-v2"

    options = tmp_path / "options.json"
    options.write_text(json.dumps({"index_enabled": False, "index_freshness_h": 2}))
    settings = load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(options)})
    assert (settings.index_enabled, settings.index_freshness_h) == (False, 2.0)


@pytest.mark.parametrize(
    "values", [{"index_freshness_h": 0}, {"index_freshness_h": -1}, {"index_rescan_s": 0.1}]
)
def test_bad_values_are_refused(values: dict[str, float]) -> None:
    with pytest.raises(SettingsError):
        Settings(**values)  # type: ignore[arg-type]


def test_index_options_are_in_the_addon_schema_and_translated() -> None:
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    options = {o for o in config["schema"] if o.startswith("index_")}
    assert options == {"index_enabled", "index_freshness_h"}
    for language in ("en", "de"):
        translated = yaml.safe_load((ADDON / "translations" / f"{language}.yaml").read_text())
        assert options <= set(translated["configuration"]), language
