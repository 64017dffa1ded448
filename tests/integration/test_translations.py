"""Every string the integration shows exists in English and German, with its icon."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

from homeassistant.util.yaml import load_yaml_dict
import pytest

from custom_components.heatcompute.fleet_issues import ISSUE_FLEET_WORKER
from custom_components.heatcompute.repair_issues import (
    ISSUE_API_VERSION,
    ISSUE_ASSISTANT_MODEL,
    ISSUE_ROOM_SENSOR,
)
from custom_components.heatcompute.sensor import SENSORS
from custom_components.heatcompute.switch import SWITCHES

COMPONENT = Path(__file__).parents[2] / "custom_components" / "heatcompute"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((COMPONENT / name).read_text(encoding="utf-8"))
    return data


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_english_translation_is_strings_json() -> None:
    assert load("translations/en.json") == load("strings.json")


def test_german_has_every_string_with_the_same_placeholders() -> None:
    english, german = leaves(load("strings.json")), leaves(load("translations/de.json"))
    assert set(german) == set(english)
    for key, text in english.items():
        assert set(re.findall(r"\{\w+\}", german[key])) == set(re.findall(r"\{\w+\}", text)), key


def test_entities_have_names_and_icons() -> None:
    strings, icons = load("strings.json")["entity"], load("icons.json")["entity"]
    keys: dict[str, set[str | None]] = {
        "sensor": {d.translation_key for d in SENSORS},
        "switch": {d.translation_key for d in SWITCHES},
        "number": {"max_power", "power_target"},
    }
    for platform, translation_keys in keys.items():
        for key in translation_keys:
            assert "name" in strings[platform][key], (platform, key)
    # Sensors with a device class get their icon from it.
    with_icon = {d.translation_key for d in SENSORS if d.device_class is None}
    with_icon |= {"chip_temperature", "heat_target", "latency_p95"}
    assert with_icon <= set(icons["sensor"])
    assert keys["switch"] <= set(icons["switch"])
    assert keys["number"] <= set(icons["number"])


@pytest.mark.parametrize(
    "action", ["submit_job", "set_heat_target", "read_text", "search_documents"]
)
def test_actions_are_described(action: str) -> None:
    services = load_yaml_dict(str(COMPONENT / "services.yaml"))
    strings = load("strings.json")["services"][action]
    assert set(services[action]["fields"]) == set(strings["fields"])
    assert action in load("icons.json")["services"]


def test_every_error_key_used_in_code_is_translated() -> None:
    strings = load("strings.json")
    code = "\n".join(path.read_text(encoding="utf-8") for path in COMPONENT.glob("*.py"))
    raised = re.findall(r'translation_domain=DOMAIN,\s*translation_key="(\w+)"', code)
    # ...and the keys of the table that maps client errors to what the user reads.
    raised += re.findall(r'Error, "(\w+)", (?:True|False)\)', code)
    assert len(set(raised)) >= 6
    for key in raised:
        assert key in strings["exceptions"], key
    flows = "\n".join(
        path.read_text(encoding="utf-8")
        for path in COMPONENT.glob("*.py")
        if path.name not in ("repairs.py", "fleet_issues.py")  # repair fix flows: below
    )
    for reason in set(re.findall(r'reason="(\w+)"', flows)):
        assert reason in strings["config"]["abort"], reason
    for error in set(re.findall(r'errors\[\w+\] = "(\w+)"', code)) | {
        "cannot_connect",
        "invalid_auth",
        "unknown",
    }:
        assert error in strings["config"]["error"] or error in strings["options"]["error"], error


def test_repair_issues_and_their_fix_flows_are_translated() -> None:
    issues = load("strings.json")["issues"]
    lost_worker = {ISSUE_FLEET_WORKER, f"{ISSUE_FLEET_WORKER}_model_down"}
    assert {ISSUE_API_VERSION, ISSUE_ROOM_SENSOR, ISSUE_ASSISTANT_MODEL} | lost_worker == set(
        issues
    )
    assert {"title", "description"} <= set(issues[ISSUE_API_VERSION])
    room = issues[ISSUE_ROOM_SENSOR]["fix_flow"]
    assert {"title", "description", "data"} <= set(room["step"]["choose_sensor"])
    assert set(room["abort"]) == {"entry_not_found"}
    model = issues[ISSUE_ASSISTANT_MODEL]["fix_flow"]
    assert {"title", "description"} <= set(model["step"]["confirm"])
    assert "download_model" in model["progress"]
    # Every way the download can end, as the options flow's download does.
    options_abort = set(load("strings.json")["options"]["abort"])
    assert set(model["abort"]) == {"entry_not_found", "model_not_offered"} | options_abort
    repairs = (COMPONENT / "repairs.py").read_text(encoding="utf-8")
    for step in re.findall(r'step_id="(\w+)"', repairs):
        assert step in room["step"] or step in model["step"], step
    for reason in re.findall(r'reason="(\w+)"', repairs):
        assert reason in room["abort"] or reason in model["abort"], reason
    # Splitting without a lost worker pairs again: each pairing error may show there.
    pairing = (COMPONENT / "pairing.py").read_text(encoding="utf-8")
    pairing += (COMPONENT / "fleet_options.py").read_text(encoding="utf-8")
    pairing_errors = set(re.findall(r'PairingError\("(\w+)"', pairing))
    assert len(pairing_errors) >= 6
    fleet_issues = (COMPONENT / "fleet_issues.py").read_text(encoding="utf-8")
    for issue in lost_worker:
        fix_flow = issues[issue]["fix_flow"]
        for step in re.findall(r'step_id="(\w+)"', fleet_issues):
            assert {"title", "description"} <= set(fix_flow["step"][step]), step
        for reason in re.findall(r'reason="(\w+)"', fleet_issues):
            assert reason in fix_flow["abort"], reason
        assert pairing_errors <= set(fix_flow["error"]), issue
    # ...and on the options form, where the pairing is chosen.
    assert pairing_errors <= set(load("strings.json")["options"]["error"])
