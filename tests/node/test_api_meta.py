"""/metrics parses with prometheus-client's own parser; /openapi.json covers every route."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .conftest import NodeClient, auth


async def scrape(client: NodeClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await client.get("/metrics", headers=auth())
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def test_metrics_parse_and_match_status(client: NodeClient) -> None:
    await client.put("/api/heat", json={"mode": "heat", "target_w": 80}, headers=auth())
    status = await (await client.get("/api/status", headers=auth())).json()
    samples = await scrape(client)
    assert samples["heatcompute_heat_target_watts"][()] == 80.0
    assert samples["heatcompute_heat_wanted"][()] == 1.0
    assert samples["heatcompute_power_watts"][()] == status["power_w"]
    assert samples["heatcompute_max_power_watts"][()] == 150.0
    assert "heatcompute_energy_kwh_total" in samples
    assert samples["heatcompute_temperature_celsius"][(("sensor", "package-0"),)] == 55.0
    info = next(iter(samples["heatcompute_node_info"]))
    assert ("node_id", status["node_id"]) in info
    # The request counter saw the PUT above, by route template and status.
    key = (("method", "PUT"), ("route", "/api/heat"), ("status", "200"))
    assert samples["heatcompute_http_requests_total"][key] == 1.0


async def test_failed_requests_are_counted(client: NodeClient) -> None:
    await client.put("/api/heat", json={"target_w": -5}, headers=auth())
    await client.get("/api/status")
    samples = await scrape(client)
    requests = samples["heatcompute_http_requests_total"]
    assert requests[(("method", "PUT"), ("route", "/api/heat"), ("status", "400"))] == 1.0
    assert requests[(("method", "GET"), ("route", "/api/status"), ("status", "401"))] == 1.0


async def test_openapi_describes_every_route(client: NodeClient) -> None:
    response = await client.get("/openapi.json", headers=auth())
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == described
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"], f"{method} {path} has no summary"
            assert op["tags"] != ["other"], f"{method} {path} has no @describe"
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "401" in spec["paths"]["/api/heat"]["put"]["responses"]
    refs = str(spec)
    for name in ("Heat", "Config", "Error"):
        assert name in spec["components"]["schemas"]
        assert f"#/components/schemas/{name}" in refs or name == "Config"


async def test_status_work_is_described_field_by_field(client: NodeClient) -> None:
    spec = await (await client.get("/openapi.json", headers=auth())).json()
    schemas = spec["components"]["schemas"]
    status_schema = spec["paths"]["/api/status"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert status_schema["properties"]["work"] == {"$ref": "#/components/schemas/Work"}
    work_schema = schemas["Work"]
    status = await (await client.get("/api/status", headers=auth())).json()
    work = status["work"]
    # Every figure the node sends is described, and every described figure is sent.
    assert set(work) == set(work_schema["properties"])
    assert set(work_schema["required"]) <= set(work)
    for name, field in work_schema["properties"].items():
        assert field.get("description"), f"work.{name} has no description"
    assert work["background"] in work_schema["properties"]["background"]["enum"]
    models = status_schema["properties"]["models"]["items"]
    assert models == {"$ref": "#/components/schemas/StatusModel"}
    assert schemas["StatusModel"]["properties"]["state"]["enum"][:4] == [
        "available",
        "loading",
        "loaded",
        "failed",
    ]
