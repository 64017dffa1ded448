"""The voice assistant's pure parts: tool-argument repair, context fit, node ranking."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from unittest.mock import MagicMock

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er, floor_registry as fr
import pytest

from custom_components.heatcompute.client import (
    HeatcomputeConnectionError,
    HeatcomputeModelNotFoundError,
    HeatcomputeOverloadedError,
    HeatcomputeResponseError,
    NodeStatus,
)
from custom_components.heatcompute.prompt import (
    PromptTooLargeError,
    TokenEstimator,
    compose_system_prompt,
    fit_to_context,
)
from custom_components.heatcompute.router import Node, NodeRouter, rank
from custom_components.heatcompute.tool_args import (
    InvalidToolCallError,
    fit_to_schema,
    parse_arguments,
    repair_tool_call,
)
from custom_components.heatcompute.tool_schema import ExposedHome, exposed_home, narrow_parameters

TURN_ON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "area": {"type": "string"},
        "domain": {"type": "array", "items": {"type": "string"}},
        "brightness": {"type": "integer"},
        "state": {"type": "string", "enum": ["on", "off"]},
    },
}
HASS_TURN_ON: dict[str, Any] = {  # as Home Assistant 2025.4 converts HassTurnOn's slots
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "area": {"type": "string"},
        "floor": {"type": "string"},
        "domain": {"type": "array", "items": {"type": "string"}},
        "device_class": {"type": "array", "items": {"type": "string", "enum": ["tv", "door"]}},
    },
    "required": [],
}
SCHEMAS = {"HassTurnOn": TURN_ON_SCHEMA, "GetLiveContext": {"type": "object", "properties": {}}}


# --- tool arguments from small models -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Kitchen"}', {"name": "Kitchen"}),
        ("", {}),
        ('```json\n{"name": "Kitchen"}\n```', {"name": "Kitchen"}),
        ('"{\\"name\\": \\"Kitchen\\"}"', {"name": "Kitchen"}),  # encoded twice
        ('{"name": "Kitchen",}', {"name": "Kitchen"}),  # trailing comma
        ('{"name": "Kitchen"', {"name": "Kitchen"}),  # cut off
        ("{'name': 'Kitchen', 'on': True}", {"name": "Kitchen", "on": True}),  # Python
        ('[{"name": "Kitchen"}]', {"name": "Kitchen"}),  # one object in a list
    ],
)
def test_arguments_are_repaired(text: str, expected: dict[str, Any]) -> None:
    assert parse_arguments(text) == expected


@pytest.mark.parametrize("text", ["turn it on", "[1, 2]", "42", "{name: }"])
def test_hopeless_arguments_say_why(text: str) -> None:
    with pytest.raises(InvalidToolCallError, match="arguments"):
        parse_arguments(text)


def test_arguments_fit_the_tool_schema() -> None:
    name, args = repair_tool_call(
        "hassturnon",
        '{"name": "Kitchen", "area": "", "floor": null, "domain": "light",'
        ' "brightness": "80%", "state": "On", "colour": "red", "device_class": "[]"}',
        SCHEMAS,
    )
    assert name == "HassTurnOn"  # the tool's real name
    # Empty slots and unknown keys dropped, a string where a list is wanted wrapped,
    # a number written as text converted, an enum's case fixed.
    assert args == {"name": "Kitchen", "domain": ["light"], "brightness": 80, "state": "on"}


def test_json_text_inside_a_value_is_decoded() -> None:
    _, args = repair_tool_call("HassTurnOn", '{"domain": "[\\"light\\"]"}', SCHEMAS)
    assert args == {"domain": ["light"]}


def test_unknown_tool_and_wrong_types_are_errors_for_the_model() -> None:
    with pytest.raises(InvalidToolCallError, match="no tool named 'TurnOnLight'.*HassTurnOn"):
        repair_tool_call("TurnOnLight", "{}", SCHEMAS)
    with pytest.raises(InvalidToolCallError, match="'brightness' must be integer"):
        repair_tool_call("HassTurnOn", '{"brightness": "bright"}', SCHEMAS)
    with pytest.raises(InvalidToolCallError, match="missing required argument"):
        repair_tool_call("T", "{}", {"T": {"type": "object", "required": ["name"]}})


# --- the prompt and the context ---------------------------------------------------------


def test_the_system_prompt_keeps_the_time_apart() -> None:
    first = compose_system_prompt(
        instructions="Be brief.",
        api_prompt="Devices: ...",
        extra=None,
        now=datetime(2026, 1, 5, 9, 30),
    )
    later = compose_system_prompt(
        instructions="Be brief.",
        api_prompt="Devices: ...",
        extra=None,
        now=datetime(2026, 1, 5, 9, 41),
    )
    assert first.stable == later.stable == "Be brief.\nDevices: ..."
    assert first.volatile != later.volatile
    assert "09:30" in first.volatile
    assert (
        compose_system_prompt(instructions="x", api_prompt=None, extra=None, now=None).volatile
        == ""
    )


def _turn(text: str, chars: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "a" * chars}]


def test_history_goes_first_when_the_context_is_full() -> None:
    system = {"role": "system", "content": "s" * 300}
    history = [_turn("old", 900), _turn("newer", 900)]
    current = [{"role": "user", "content": "now"}]
    kwargs: dict[str, Any] = {
        "system": system,
        "current": current,
        "tools": [],
        "max_tokens": 100,
        "estimator": TokenEstimator(),
        "model": "m",
    }
    roomy = fit_to_context(history=history, context_length=4096, **kwargs)
    assert roomy.dropped_turns == 0
    assert len(roomy.messages) == 6
    tight = fit_to_context(history=history, context_length=800, **kwargs)
    assert tight.dropped_turns == 1  # the oldest turn left out, the newer one kept
    assert [m["content"] for m in tight.messages if m["role"] == "user"] == ["newer", "now"]
    with pytest.raises(PromptTooLargeError) as err:
        fit_to_context(history=history, context_length=150, **kwargs)
    assert err.value.limit == 150
    assert err.value.needed > 150


def test_the_estimate_learns_from_the_nodes_counts() -> None:
    estimator = TokenEstimator()
    assert estimator.tokens("m", 3000) == 1001  # 3 characters per token until told
    estimator.calibrate("m", 4000, 1000)  # the node counted 4 characters per token
    assert estimator.ratio("m") == pytest.approx(3.8)
    assert estimator.ratio("other") == 3.0


# --- the router -------------------------------------------------------------------------


def node(
    node_id: str,
    *,
    target_w: float = 0.0,
    queue: int = 0,
    healthy: bool = True,
    models: tuple[str, ...] = ("m",),
    state: str = "loaded",
) -> Node:
    status = NodeStatus.from_dict(
        {
            "node_id": node_id,
            "heat": {"mode": "heat" if target_w else "off", "target_w": target_w},
            "work": {"queue_depth": queue, "requests_active": 0},
            "models": [{"id": m, "state": state} for m in models],
        }
    )
    return Node(node_id=node_id, name=node_id, client=MagicMock(), status=status, healthy=healthy)


def test_the_room_that_wants_heat_most_gets_the_work() -> None:
    nodes = [node("cold", target_w=150), node("warm"), node("cool", target_w=60)]
    assert [n.node_id for n in rank(nodes, "m")] == ["cold", "cool", "warm"]
    # Equal demand: the shorter queue.
    busy = [node("a", target_w=100, queue=3), node("b", target_w=100, queue=1)]
    assert [n.node_id for n in rank(busy, "m")] == ["b", "a"]
    # Unhealthy, loading, or without the model: last, whatever the room wants.
    mixed = [
        node("down", target_w=200, healthy=False),
        node("loading", target_w=180, state="loading"),
        node("other-model", target_w=170, models=("x",)),
        node("ok", target_w=10),
    ]
    assert [n.node_id for n in rank(mixed, "m")] == ["ok", "loading", "other-model", "down"]


async def test_a_conversation_stays_on_its_node_and_fails_over_once() -> None:
    router = NodeRouter()
    cold, warm = node("cold", target_w=150), node("warm")
    used: list[str] = []

    async def answer(n: Node) -> str:
        used.append(n.node_id)
        return n.node_id

    assert await router.run("c1", [cold, warm], "m", answer) == (cold, "cold")
    # The room warmed up and the other one now wants heat: the conversation stays put
    # (its prompt is cached there); a new conversation goes to the other room.
    cold2, warm2 = node("cold"), node("warm", target_w=150)
    assert (await router.run("c1", [cold2, warm2], "m", answer))[1] == "cold"
    assert (await router.run("c2", [cold2, warm2], "m", answer))[1] == "warm"

    async def first_fails(n: Node) -> str:
        used.append(n.node_id)
        if n.node_id == "cold":
            raise HeatcomputeConnectionError("gone")
        return n.node_id

    used.clear()
    assert (await router.run("c1", [cold2, warm2], "m", first_fails))[1] == "warm"
    assert used == ["cold", "warm"]
    assert router.node_of("c1") == "warm"


async def test_only_node_failures_are_retried_and_only_once() -> None:
    router = NodeRouter()
    nodes = [node("a", target_w=3), node("b", target_w=2), node("c", target_w=1)]
    calls: list[str] = []

    async def refused(n: Node) -> str:
        calls.append(n.node_id)
        raise HeatcomputeResponseError(400, "bad request")

    with pytest.raises(HeatcomputeResponseError):
        await router.run("c", nodes, "m", refused)
    assert calls == ["a"]  # another node would refuse it too

    calls.clear()

    async def full(n: Node) -> str:
        calls.append(n.node_id)
        raise HeatcomputeOverloadedError("busy", "overloaded", 2.0)

    with pytest.raises(HeatcomputeOverloadedError):
        await router.run("c", nodes, "m", full)
    assert calls == ["a", "b"]  # one retry, not a tour of the fleet

    calls.clear()

    async def without_the_model(n: Node) -> str:
        calls.append(n.node_id)
        if n.node_id == "a":
            raise HeatcomputeModelNotFoundError(404, "no model 'm'", "model_not_found")
        return n.node_id

    assert (await router.run("d", nodes, "m", without_the_model))[1] == "b"
    assert calls == ["a", "b"]  # another node may have the model


# --- tool schemas narrowed to the home --------------------------------------------------


def test_a_home_with_areas_lets_a_call_name_either_target() -> None:
    home = ExposedHome(
        names=("Desk lamp",), areas=("Office",), floors=(), domains=("light", "switch")
    )
    schema = narrow_parameters(copy.deepcopy(HASS_TURN_ON), home)
    # Either a name or an area, each from the home; floors (none here) and classes gone.
    assert "properties" not in schema
    by_target = {tuple(v["required"]): v["properties"] for v in schema["anyOf"]}
    assert by_target[("name",)] == {
        "name": {"type": "string", "enum": ["Desk lamp"]},
        "domain": {"type": "array", "items": {"type": "string", "enum": ["light", "switch"]}},
    }
    assert by_target[("area",)]["area"] == {"type": "string", "enum": ["Office"]}
    # A tool without targets keeps its own parameters.
    assert narrow_parameters({"type": "object", "properties": {}}, home) == {
        "type": "object",
        "properties": {},
    }


def test_the_nodes_tools_keep_their_shapes_and_name_something() -> None:
    """The node's local-data tools: a one-domain filter stays one string, a required list
    must hold at least one id (a small model writes [] otherwise)."""
    home = ExposedHome(names=("Desk lamp",), areas=(), floors=(), domains=("light", "sensor"))
    entities = narrow_parameters(
        {"type": "object", "properties": {"domain": {"type": "string"}}, "required": []}, home
    )
    assert entities["properties"]["domain"] == {"type": "string", "enum": ["light", "sensor"]}
    statistics = narrow_parameters(
        {
            "type": "object",
            "properties": {"statistic_ids": {"type": "array", "items": {"type": "string"}}},
            "required": ["statistic_ids"],
        },
        home,
    )
    assert statistics["properties"]["statistic_ids"]["minItems"] == 1


async def test_the_home_is_read_from_the_registries(hass: HomeAssistant) -> None:
    floor = fr.async_get(hass).async_create("Upstairs")
    office = ar.async_get(hass).async_create("Office", aliases={"Study"}, floor_id=floor.floor_id)
    entry = er.async_get(hass).async_get_or_create("light", "test", "lamp")
    er.async_get(hass).async_update_entity(
        entry.entity_id, area_id=office.id, aliases={"Reading light"}
    )
    hass.states.async_set(entry.entity_id, "off", {"friendly_name": "Desk lamp"})
    hass.states.async_set("switch.hidden", "off", {"friendly_name": "Hidden"})
    async_expose_entity(hass, "conversation", entry.entity_id, True)
    async_expose_entity(hass, "conversation", "switch.hidden", False)

    home = exposed_home(hass)

    assert home == ExposedHome(
        names=("Desk lamp", "Reading light"),
        areas=("Office", "Study"),
        floors=("Upstairs",),
        domains=("light",),
    )


@pytest.mark.parametrize(
    ("prop", "raw", "expected"),
    [
        # a JSON-looking string that isn't JSON stays a string
        ({"type": "string"}, "[not json", "[not json"),
        # type given as a list, and anyOf/oneOf alternatives
        ({"type": ["integer", "null"]}, "7", 7),
        ({"anyOf": [{"type": "number"}, {"type": "null"}]}, "2.5", 2.5),
        ({"oneOf": [{"type": "boolean"}]}, "TRUE", True),
        # a one-element list where a single value is wanted
        ({"type": "string"}, ["kitchen"], "kitchen"),
        # a number where text is wanted
        ({"type": "string"}, 21, "21"),
        # a float written for an integer slot stays a float only if it isn't whole
        ({"type": "integer"}, "3.0", 3),
        ({"type": "number"}, "40%", 40.0),
        # enum case fixed inside a list
        (
            {"type": "array", "items": {"type": "string", "enum": ["light", "fan"]}},
            ["Light"],
            ["light"],
        ),
        # objects and nulls are accepted as they are; unknown types are left alone
        ({"type": "object"}, {"a": 1}, {"a": 1}),
        ({"type": "color"}, "red", "red"),
    ],
)
def test_values_are_coerced_to_the_schema(prop: dict[str, Any], raw: Any, expected: Any) -> None:
    schema = {"type": "object", "properties": {"v": prop}}
    assert fit_to_schema({"v": raw}, schema) == {"v": expected}


@pytest.mark.parametrize(
    ("prop", "raw"),
    [
        ({"type": "integer"}, "a few"),
        ({"type": "boolean"}, "maybe"),
        ({"type": "integer"}, [1, 2]),
        ({"type": "null"}, 3),
    ],
)
def test_values_that_cannot_fit_are_errors(prop: dict[str, Any], raw: Any) -> None:
    schema = {"type": "object", "properties": {"v": prop}}
    with pytest.raises(InvalidToolCallError, match="'v' must be"):
        fit_to_schema({"v": raw}, schema)


def test_a_schema_without_properties_keeps_every_argument() -> None:
    assert fit_to_schema({"x": 1, "y": ""}, {"type": "object"}) == {"x": 1}
    assert fit_to_schema({"x": 1}, {"type": "object", "properties": "bad"}) == {"x": 1}
    open_schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": True}
    assert fit_to_schema({"a": 1, "b": 2}, open_schema) == {"a": 1, "b": 2}
