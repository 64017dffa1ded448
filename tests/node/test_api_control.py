"""The control plane's contract: status, heat target, config, health, auth, bad input.

Runs a real node app on 127.0.0.1 with the aiohttp test server; only the hardware
sensors are stand-ins (StaticHardware), since this machine has none to read.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import TOKEN, NodeClient, StaticHardware, auth


async def test_health_needs_no_token(client: NodeClient) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_status_reports_the_node(client: NodeClient, hardware: StaticHardware) -> None:
    response = await client.get("/api/status", headers=auth())
    assert response.status == 200
    status = await response.json()
    assert len(status["node_id"]) == 12
    assert status["api_version"] == "1"
    assert status["hardware"] == "static"
    assert status["power_w"] == hardware.power_w
    assert status["temperatures"]["chip_c"] == 55.0
    assert status["temperatures"]["sensors"] == {"package-0": 55.0}
    assert status["heat"] == {
        "mode": "off",
        "target_w": 0.0,
        "max_power_w": 150.0,
        "wanted": False,
        "updated_at": status["heat"]["updated_at"],
    }
    assert status["energy_kwh"] >= 0
    # Heat reuse is one figure, kept with the energy figures it is computed from.
    assert "heat_reuse" not in status
    assert "heat_reuse" in status["energy"]
    assert status["config"]["max_power_limit_w"] == 150.0
    for key in ("tokens_per_s", "requests_active", "queue_depth", "jobs_pending"):
        assert key in status["work"]


async def test_node_id_is_stable_across_restarts(client: NodeClient, settings: Any) -> None:
    first = (await (await client.get("/api/status", headers=auth())).json())["node_id"]
    assert (settings.data_dir / "node_id").read_text().strip() == first


async def test_put_heat_sets_the_target(client: NodeClient) -> None:
    response = await client.put("/api/heat", json={"mode": "heat", "target_w": 120}, headers=auth())
    assert response.status == 200
    heat = await response.json()
    assert heat["mode"] == "heat"
    assert heat["target_w"] == 120.0
    assert heat["wanted"] is True
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["heat"]["target_w"] == 120.0
    # Off keeps the watts, like a thermostat keeps its set point.
    heat = await (await client.put("/api/heat", json={"mode": "off"}, headers=auth())).json()
    assert heat == {**heat, "mode": "off", "target_w": 120.0, "wanted": False}
    assert (await (await client.get("/api/heat", headers=auth())).json())["mode"] == "off"


async def test_zero_watts_means_no_heat_wanted(client: NodeClient) -> None:
    heat = await (
        await client.put("/api/heat", json={"mode": "heat", "target_w": 0}, headers=auth())
    ).json()
    assert heat["wanted"] is False


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"mode": "heat", "target_w": -1}, 400, "out_of_range", "target_w"),
        ({"mode": "heat", "target_w": 151}, 400, "out_of_range", "target_w"),
        ({"mode": "heat", "target_w": "lots"}, 400, "invalid_type", "target_w"),
        ({"mode": "heat", "target_w": True}, 400, "invalid_type", "target_w"),
        ({"mode": "boil", "target_w": 10}, 400, "invalid_value", "mode"),
        ({"mode": "heat", "watts": 10}, 400, "unknown_field", "watts"),
        ({}, 400, "missing_field", "mode"),
    ],
)
async def test_bad_heat_requests_are_refused_with_a_reason(
    client: NodeClient, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    before = await (await client.get("/api/heat", headers=auth())).json()
    response = await client.put("/api/heat", json=body, headers=auth())
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    # Nothing changed, and the node still answers.
    assert await (await client.get("/api/heat", headers=auth())).json() == before


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"mode=heat", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_malformed_bodies_are_refused(
    client: NodeClient, raw: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.put(
        "/api/heat", data=raw, headers={**auth(), "Content-Type": content_type}
    )
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert (await client.get("/health")).status == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing_token"),
        ({"Authorization": "Bearer"}, "missing_token"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/status"),
        ("PUT", "/api/heat"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/events"),
        ("PATCH", "/api/config"),
    ],
)
async def test_every_route_but_health_needs_the_token(
    client: NodeClient, headers: dict[str, str], code: str, method: str, path: str
) -> None:
    response = await client.request(
        method, path, headers=headers, json={"mode": "heat", "target_w": 1}
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["type"] == "authentication_error"
    heat = await (await client.get("/api/heat", headers=auth())).json()
    assert heat["mode"] == "off"


async def test_unknown_route_and_method_are_openai_shaped(client: NodeClient) -> None:
    response = await client.get("/api/nope", headers=auth())
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "route_not_found"
    response = await client.delete("/api/status", headers=auth())
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_config_round_trip_and_persistence(client: NodeClient, settings: Any) -> None:
    config = await (await client.get("/api/config", headers=auth())).json()
    assert config == {
        "serve_requests": True,
        "background_jobs": True,
        "filler": False,
        "max_power_w": 150.0,
        "max_power_limit_w": 150.0,
    }
    await client.put("/api/heat", json={"mode": "heat", "target_w": 140}, headers=auth())
    response = await client.patch(
        "/api/config", json={"filler": True, "max_power_w": 100}, headers=auth()
    )
    assert response.status == 200
    config = await response.json()
    assert config["filler"] is True
    assert config["max_power_w"] == 100.0
    # A lowered cap pulls a standing target down with it.
    heat = await (await client.get("/api/heat", headers=auth())).json()
    assert heat["target_w"] == 100.0
    assert heat["max_power_w"] == 100.0
    assert '"filler": true' in (settings.data_dir / "config.json").read_text()
    # And targets above the new cap are refused.
    response = await client.put("/api/heat", json={"target_w": 120}, headers=auth())
    assert response.status == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"filler": "yes"}, "filler"),
        ({"max_power_w": 0}, "max_power_w"),
        ({"max_power_w": 151}, "max_power_w"),
        ({"max_power_w": None}, "max_power_w"),
        ({"turbo": True}, "turbo"),
    ],
)
async def test_bad_config_changes_are_refused(
    client: NodeClient, body: dict[str, Any], param: str
) -> None:
    response = await client.patch("/api/config", json=body, headers=auth())
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param
    config = await (await client.get("/api/config", headers=auth())).json()
    assert config["max_power_w"] == 150.0
    assert config["filler"] is False
