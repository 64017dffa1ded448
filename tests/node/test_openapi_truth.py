"""What /openapi.json says each route answers is what the route answers, in each
protocol's own shape: Triton's on /v2, JSON-RPC's on /mcp, OpenAI's elsewhere.

scripts/api_fuzz.py checks this with random cases; these are the answers it found
described wrongly, asked of a real node on 127.0.0.1, each validated against the schema
the document gives for that route and status.
"""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the venv

from .conftest import NodeClient, auth


async def document(client: NodeClient) -> dict[str, Any]:
    response = await client.get("/openapi.json", headers=auth())
    assert response.status == 200
    spec: dict[str, Any] = await response.json()
    return spec


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema` whose `#/components/...` are the document's."""
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


def documented(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The schema of the JSON body `method path` is documented to answer with `status`."""
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path}: {status} is not documented"
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


async def check(
    client: NodeClient,
    spec: dict[str, Any],
    *,
    method: str,
    url: str,
    path: str,
    status: int,
    **kwargs: Any,
) -> Any:
    response = await client.request(method, url, headers=auth(), **kwargs)
    body = await response.json()
    assert response.status == status, body
    validator(spec, documented(spec, path, method.lower(), status)).validate(body)
    return body


async def test_kserve_answers_are_described_in_tritons_shape(client: NodeClient) -> None:
    spec = await document(client)
    body = await check(
        client, spec, method="GET", url="/v2/models/nope", path="/v2/models/{model}", status=404
    )
    assert body == {"error": "Request for unknown model: 'nope' is not found"}
    for url, path in (
        ("/v2/models/nope/ready", "/v2/models/{model}/ready"),
        ("/v2/models/nope/config", "/v2/models/{model}/config"),
        ("/v2/models/nope/stats", "/v2/models/{model}/stats"),
    ):
        await check(client, spec, method="GET", url=url, path=path, status=404)
    await check(
        client,
        spec,
        method="POST",
        url="/v2/models/nope/infer",
        path="/v2/models/{model}/infer",
        status=404,
        json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
    )
    await check(
        client,
        spec,
        method="GET",
        url="/v2/models/nope/versions/0",
        path="/v2/models/{model}/versions/{version}",
        status=400,
    )
    await check(
        client,
        spec,
        method="POST",
        url="/v2/repository/models/nope/unload",
        path="/v2/repository/models/{model}/unload",
        status=400,
    )
    index = await check(
        client,
        spec,
        method="POST",
        url="/v2/repository/index",
        path="/v2/repository/index",
        status=200,
    )
    assert index == []
    # The version "0" is refused by the schema, too: the document says which versions exist.
    version = next(
        p
        for p in spec["paths"]["/v2/models/{model}/versions/{version}"]["get"]["parameters"]
        if p["name"] == "version"
    )
    assert not validator(spec, version["schema"]).is_valid("0")
    assert validator(spec, version["schema"]).is_valid("3")


async def test_a_version_in_other_digits_is_a_400_not_a_500(client: NodeClient) -> None:
    """str.isdigit() took "²" (int() then failed: 500) and "٣" (read as 3)."""
    for version in ("²", "٣"):
        response = await client.get(f"/v2/models/nope/versions/{version}", headers=auth())
        assert response.status == 400, await response.text()
        assert await response.json() == {
            "error": f"invalid model version '{version}': expected a number >= 1"
        }


async def test_mcp_answers_are_described_as_json_rpc(client: NodeClient) -> None:
    spec = await document(client)
    for method in ("GET", "DELETE"):
        body = await check(client, spec, method=method, url="/mcp", path="/mcp", status=405)
        assert body["error"]["code"] == -32600
    body = await check(
        client,
        spec,
        method="POST",
        url="/mcp",
        path="/mcp",
        status=400,
        json={"jsonrpc": "1.0", "id": 1, "method": "ping"},
    )
    assert body["jsonrpc"] == "2.0"
    # Without a token of its own, the bridge refuses in its own shape too.
    response = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status == 401
    validator(spec, documented(spec, "/mcp", "post", 401)).validate(await response.json())
    await check(
        client,
        spec,
        method="POST",
        url="/mcp/messages?session_id=none",
        path="/mcp/messages",
        status=404,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    # A notification is answered 202 without a body, as described.
    response = await client.post(
        "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=auth()
    )
    assert response.status == 202
    assert "202" in spec["paths"]["/mcp"]["post"]["responses"]


async def test_mcp_tokens_are_described_as_created(client: NodeClient) -> None:
    spec = await document(client)
    operation = spec["paths"]["/api/mcp/tokens"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    # A token without scopes: the document refuses it as the node does.
    assert not validator(spec, request).is_valid({"name": "kitchen", "scopes": []})
    response = await client.post(
        "/api/mcp/tokens", json={"name": "kitchen", "scopes": []}, headers=auth()
    )
    assert response.status == 400
    assert validator(spec, request).is_valid({"name": "kitchen", "scopes": ["files"]})
    response = await client.post(
        "/api/mcp/tokens", json={"name": "kitchen", "scopes": ["files"]}, headers=auth()
    )
    assert response.status == 201
    assert "201" in operation["responses"]
    # "$" in a Python pattern also matches before a final newline: the name is refused.
    response = await client.post(
        "/api/mcp/tokens", json={"name": "kitchen\n", "scopes": ["files"]}, headers=auth()
    )
    assert response.status == 400


async def test_a_job_for_a_model_the_node_lacks_is_described_as_the_400_it_gets(
    client: NodeClient,
) -> None:
    """Found by a random seed: the document promised a 404 (Home Assistant reads a 404
    as an API the node lacks, so the node answers 400 model_not_available)."""
    spec = await document(client)
    body = await check(
        client,
        spec,
        method="POST",
        url="/api/jobs",
        path="/api/jobs",
        status=400,
        json={"kind": "completions", "items": ["hello"], "model": "no-such-model"},
    )
    assert body["error"]["code"] == "model_not_available"
    request = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]
    described = {
        branch["properties"]["model"]["description"] for branch in request["schema"]["oneOf"]
    }
    assert described == {"a model id; one the node lacks is a 400 model_not_available"}
