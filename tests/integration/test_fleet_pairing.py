"""Several nodes from Home Assistant: the worker switch, pairing a lead with its workers
from the lead's options, the repair for a worker the lead lost, diagnostics.

Real: Home Assistant with one config entry per node; the nodes on 127.0.0.1 with their
fleet service (keys, ggml's RPC server behind the TLS tunnel, the lead's split of a
tiny random-weight model in its engine process). What the nodes hold is read from the
node side (the fleet service's own state), not through the integration's client.
Faked: only the hardware (the twin).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
import json
from pathlib import Path
import re
from typing import Any

from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.components.diagnostics import (  # type: ignore[import-untyped]
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import (  # type: ignore[import-untyped]
    ClientSessionGenerator,
)

from custom_components.heatcompute.client import NodeStatus
from custom_components.heatcompute.const import CONF_FLEET, CONF_FLEET_MODEL, CONF_WORKERS, DOMAIN
from custom_components.heatcompute.coordinator import HeatcomputeCoordinator
from heatcompute_node.api.fleet import FLEET_KEY
from heatcompute_node.fleet.service import FleetService

from .conftest import RunningNode, free_port, setup_entry, start_llm_node, state

STRINGS = Path(__file__).resolve().parents[2] / "custom_components" / "heatcompute" / "strings.json"
# The lead splits its model and starts an engine process for it: seconds on a quiet
# machine, more on two shared cores. A bound, not a wait.
SPLIT_TIMEOUT_S = 90.0


@dataclass
class SetUpNode:
    """A node, its config entry, and what the node side holds."""

    running: RunningNode
    entry: MockConfigEntry

    @property
    def fleet(self) -> FleetService:
        assert self.running.app is not None
        return self.running.app[FLEET_KEY]

    @property
    def node_id(self) -> str:
        return self.running.node.node_id

    @property
    def coordinator(self) -> HeatcomputeCoordinator:
        coordinator: HeatcomputeCoordinator = self.entry.runtime_data.coordinator
        return coordinator


async def set_up(hass: HomeAssistant, running: RunningNode, title: str) -> SetUpNode:
    entry = MockConfigEntry(
        domain=DOMAIN, title=title, unique_id=running.node.node_id, data=running.entry_data()
    )
    await setup_entry(hass, entry)
    return SetUpNode(running, entry)


@pytest.fixture
async def lead_and_worker(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    tiny_model: Path,
) -> AsyncIterator[tuple[SetUpNode, SetUpNode]]:
    """Two nodes serving the tiny model: the lead to be, and its worker to be."""
    lead_node = await start_llm_node(
        tmp_path / "lead", tiny_model, {"node_name": "study", "fleet_port": free_port()}
    )
    worker_node = await start_llm_node(
        tmp_path / "worker", tiny_model, {"node_name": "kitchen", "fleet_port": free_port()}
    )
    lead = await set_up(hass, lead_node, "Study")
    worker = await set_up(hass, worker_node, "Kitchen")
    try:
        yield lead, worker
    finally:
        try:
            for node in (lead, worker):
                # Before the nodes stop (else the coordinators log them going away);
                # a test may have deleted an entry.
                if hass.config_entries.async_get_entry(node.entry.entry_id) is not None:
                    await hass.config_entries.async_unload(node.entry.entry_id)
            await hass.async_block_till_done()
        finally:
            for node in (lead, worker):
                await node.running.stop()


async def until(
    coordinator: HeatcomputeCoordinator,
    predicate: Callable[[NodeStatus], bool],
    timeout: float = 10.0,
) -> NodeStatus:
    """Wait (on the coordinator's updates) until Home Assistant sees the node so."""
    reached: asyncio.Future[NodeStatus] = asyncio.get_running_loop().create_future()

    @callback
    def check() -> None:
        if coordinator.data is not None and predicate(coordinator.data) and not reached.done():
            reached.set_result(coordinator.data)

    stop = coordinator.async_add_listener(check)
    try:
        check()
        return await asyncio.wait_for(reached, timeout)
    finally:
        stop()


def role_of(node: SetUpNode) -> str:
    """The node's role now (a function, so a type checker does not pin it)."""
    return node.fleet.role.name


def worker_running(node: SetUpNode) -> bool:
    return node.fleet.worker is not None


def lost_a_worker(status: NodeStatus) -> bool:
    lead = status.fleet.lead if status.fleet else None
    return lead is not None and any(worker.lost for worker in lead.workers)


def lead_state(status: NodeStatus) -> str | None:
    return status.fleet.lead.state if status.fleet and status.fleet.lead else None


def entity_of(hass: HomeAssistant, platform: str, node: SetUpNode, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{node.node_id}_{key}")
    assert found is not None
    return found


def worker_switch(hass: HomeAssistant, node: SetUpNode) -> str:
    return entity_of(hass, "switch", node, "fleet_worker")


def fleet_sensor(hass: HomeAssistant, node: SetUpNode) -> str:
    return state(hass, entity_of(hass, "sensor", node, "fleet_state")).state


async def pair(
    hass: HomeAssistant, lead: SetUpNode, workers: list[str], model: str | None
) -> ConfigFlowResult:
    """The lead's options form, submitted with its fleet section so."""
    form = await hass.config_entries.options.async_init(lead.entry.entry_id)
    assert form["type"] is FlowResultType.FORM
    fleet: dict[str, Any] = {CONF_WORKERS: workers}
    if model is not None:
        fleet[CONF_FLEET_MODEL] = model
    return await hass.config_entries.options.async_configure(
        form["flow_id"], user_input={CONF_FLEET: fleet}
    )


def model_of(node: SetUpNode) -> str:
    return node.running.status().models[0]


# --- the worker switch ------------------------------------------------------------------


async def test_the_worker_switch_gives_and_takes_the_worker_role(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    _, worker = lead_and_worker
    switch = worker_switch(hass, worker)
    # Off by default: a node lends itself to nobody until asked.
    assert state(hass, switch).state == STATE_OFF
    assert fleet_sensor(hass, worker) == "off"
    assert role_of(worker) == "off"

    await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: switch}, blocking=True)
    assert role_of(worker) == "worker"
    assert worker_running(worker)
    assert state(hass, switch).state == STATE_ON

    await hass.services.async_call("switch", "turn_off", {ATTR_ENTITY_ID: switch}, blocking=True)
    assert role_of(worker) == "off"
    assert not worker_running(worker)
    assert state(hass, switch).state == STATE_OFF


# --- pairing from the lead's options ----------------------------------------------------


async def test_the_leads_options_pair_it_with_its_workers(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    lead, worker = lead_and_worker
    model = model_of(lead)
    result = await pair(hass, lead, [worker.node_id], model)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result

    # Each node trusts the other's key, as it is on that node; the lead reaches the
    # worker's tunnel where Home Assistant reaches the worker.
    lead_knows = lead.fleet.state.peers[worker.node_id]
    worker_knows = worker.fleet.state.peers[lead.node_id]
    assert lead_knows.fingerprint == worker.fleet.key.fingerprint
    assert worker_knows.fingerprint == lead.fleet.key.fingerprint
    assert lead_knows.address == f"127.0.0.1:{worker.running.overrides['fleet_port']}"
    assert role_of(worker) == "worker"
    assert role_of(lead) == "lead"
    assert lead.fleet.role.model == model
    assert list(lead.fleet.role.workers) == [worker.node_id]
    # Home Assistant keeps the choice, never a key.
    assert lead.entry.options[CONF_FLEET] == {
        CONF_WORKERS: [worker.node_id],
        CONF_FLEET_MODEL: model,
    }
    stored = json.dumps(dict(lead.entry.options)) + json.dumps(dict(worker.entry.options))
    assert "CERTIFICATE" not in stored
    assert lead.fleet.key.fingerprint not in stored

    # The split runs, and Home Assistant sees it, and the worker's switch shows its role.
    status = await until(lead.coordinator, lambda s: lead_state(s) == "split", SPLIT_TIMEOUT_S)
    assert status.fleet is not None
    assert status.fleet.lead is not None
    assert [w.node_id for w in status.fleet.lead.workers] == [worker.node_id]
    assert state(hass, worker_switch(hass, worker)).state == STATE_ON
    assert fleet_sensor(hass, lead) == "split"
    assert fleet_sensor(hass, worker) == "worker"

    # No workers: the lead runs alone again and both forget each other.
    result = await pair(hass, lead, [], None)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert role_of(lead) == "off"
    assert role_of(worker) == "off"
    assert worker.node_id not in lead.fleet.state.peers
    assert lead.node_id not in worker.fleet.state.peers


async def test_a_worker_that_cannot_be_reached_is_named_on_the_form(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    """Nothing is saved and the lead keeps its role; once the worker is back, the same
    choice pairs them."""
    lead, worker = lead_and_worker
    model = model_of(lead)
    await worker.running.stop()

    result = await pair(hass, lead, [worker.node_id], model)
    assert result["type"] is FlowResultType.FORM
    # Its entry is loaded but the node is away: the call to it fails, and says where.
    assert result["errors"] == {"base": "cannot_connect"}
    assert (result.get("description_placeholders") or {})["node"] == "Kitchen"
    assert CONF_FLEET not in lead.entry.options
    assert role_of(lead) == "off"

    await worker.running.start()
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        user_input={CONF_FLEET: {CONF_WORKERS: [worker.node_id], CONF_FLEET_MODEL: model}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert role_of(lead) == "lead"


async def test_workers_without_a_model_ask_for_one(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    lead, worker = lead_and_worker
    result = await pair(hass, lead, [worker.node_id], None)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "fleet_model_required"}
    assert worker.fleet.state.peers == {}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        user_input={CONF_FLEET: {CONF_WORKERS: [worker.node_id], CONF_FLEET_MODEL: model_of(lead)}},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result


async def test_a_lead_is_no_worker_of_another(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    """The worker's options choosing the lead as its own worker: the form names the
    lead, and neither node's pairing or role changes."""
    lead, worker = lead_and_worker
    assert (await pair(hass, lead, [worker.node_id], model_of(lead)))["type"] is (
        FlowResultType.CREATE_ENTRY
    )
    result = await pair(hass, worker, [lead.node_id], model_of(worker))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "worker_is_lead"}
    assert (result.get("description_placeholders") or {})["node"] == "Study"
    assert role_of(lead) == "lead"
    assert role_of(worker) == "worker"
    assert set(worker.fleet.state.peers) == {lead.node_id}


async def test_a_model_the_lead_does_not_have_is_refused_before_anything_changes(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    lead, worker = lead_and_worker
    result = await pair(hass, lead, [worker.node_id], "no-such-model")
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "fleet_model_unknown"}
    assert result.get("description_placeholders") == {"node": "Study", "error": "no-such-model"}
    assert worker.fleet.state.peers == {}
    assert lead.fleet.state.peers == {}
    assert role_of(worker) == "off"


async def test_a_token_the_worker_refuses_is_named_on_the_form(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    """The worker got a new token that Home Assistant has not been told yet."""
    lead, worker = lead_and_worker
    await worker.running.stop()
    await worker.running.start(token="a-new-token-0123456789")
    result = await pair(hass, lead, [worker.node_id], model_of(lead))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert (result.get("description_placeholders") or {})["node"] == "Kitchen"
    assert role_of(lead) == "off"


async def test_a_worker_no_longer_set_up_can_still_be_let_go(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    """Its entry was deleted while it worked for the lead: the lead's options still
    show it, but another split with it is refused until it is set up again; taken
    out, the lead forgets it, and it is no longer offered."""
    lead, worker = lead_and_worker
    model = model_of(lead)
    assert (await pair(hass, lead, [worker.node_id], model))["type"] is FlowResultType.CREATE_ENTRY
    assert await hass.config_entries.async_remove(worker.entry.entry_id)
    await hass.async_block_till_done()

    result = await pair(hass, lead, [worker.node_id], model)
    assert result["type"] is FlowResultType.CREATE_ENTRY  # nothing changed: nothing done
    result = await pair(hass, lead, [worker.node_id], "another-model")
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "worker_not_set_up"}

    result = await pair(hass, lead, [], None)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert role_of(lead) == "off"
    assert worker.node_id not in lead.fleet.state.peers
    with pytest.raises(InvalidData):
        await pair(hass, lead, [worker.node_id], model)


async def test_a_lead_cannot_be_switched_into_a_worker(
    hass: HomeAssistant, lead_and_worker: tuple[SetUpNode, SetUpNode]
) -> None:
    """That would end its split behind its options' back: the switch says so."""
    from homeassistant.exceptions import ServiceValidationError

    lead, worker = lead_and_worker
    assert (await pair(hass, lead, [worker.node_id], model_of(lead)))["type"] is (
        FlowResultType.CREATE_ENTRY
    )
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            "switch", "turn_on", {ATTR_ENTITY_ID: worker_switch(hass, lead)}, blocking=True
        )
    assert raised.value.translation_key == "node_is_lead"
    assert role_of(lead) == "lead"


# --- a lost worker ----------------------------------------------------------------------


async def test_a_lost_worker_raises_a_repair_that_splits_without_it(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    lead_and_worker: tuple[SetUpNode, SetUpNode],
) -> None:
    lead, worker = lead_and_worker
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    client = await hass_client()
    assert (await pair(hass, lead, [worker.node_id], model_of(lead)))["type"] is (
        FlowResultType.CREATE_ENTRY
    )
    await until(lead.coordinator, lambda s: lead_state(s) == "split", SPLIT_TIMEOUT_S)
    issue_id = f"fleet_worker_lost_{lead.entry.entry_id}_{worker.node_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    # The worker goes away: the lead says so, and Home Assistant raises the issue.
    await worker.running.stop()
    await until(lead.coordinator, lost_a_worker, SPLIT_TIMEOUT_S)
    raised = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert raised is not None
    assert raised.is_fixable
    # The tiny model fits on the lead alone: the lead serves it so, as the issue says.
    await until(lead.coordinator, lambda s: lead_state(s) == "local", SPLIT_TIMEOUT_S)
    raised = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert raised is not None
    assert raised.translation_key == "fleet_worker_lost"
    assert fleet_sensor(hass, lead) == "local"
    assert raised.translation_placeholders is not None
    assert raised.translation_placeholders["lead"] == "Study"
    assert raised.translation_placeholders["worker"] == "kitchen"

    # It comes back (its role kept on its disk): the split mends, the issue goes.
    await worker.running.start()
    await until(lead.coordinator, lambda s: lead_state(s) == "split", SPLIT_TIMEOUT_S)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    # It goes again, for good this time.
    await worker.running.stop()
    await until(lead.coordinator, lost_a_worker, SPLIT_TIMEOUT_S)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    # The fix: split without it. The lead forgets the worker and runs alone.
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert response.status == 200
    flow = await response.json()
    assert flow["step_id"] == "confirm"
    # What its text names (the strings' placeholders are all given).
    placeholders = flow["description_placeholders"]
    assert placeholders["lead"] == "Study"
    assert placeholders["worker"] == "kitchen"
    assert placeholders["model"] == model_of(lead)
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))
    for key in ("fleet_worker_lost", "fleet_worker_lost_model_down"):
        text = strings["issues"][key]["fix_flow"]["step"]["confirm"]["description"]
        assert set(re.findall(r"\{(\w+)\}", text)) <= set(placeholders)
    response = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert (await response.json())["type"] == "create_entry"
    assert lead.entry.options[CONF_FLEET][CONF_WORKERS] == []
    assert role_of(lead) == "off"
    assert worker.node_id not in lead.fleet.state.peers
    # Home Assistant hears that the node leads no more, and the issue goes with it.
    await until(lead.coordinator, lambda s: s.fleet is not None and s.fleet.role == "off")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


# --- diagnostics ------------------------------------------------------------------------


async def test_diagnostics_leave_out_the_pairing_keys(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    lead_and_worker: tuple[SetUpNode, SetUpNode],
) -> None:
    lead, worker = lead_and_worker
    assert (await pair(hass, lead, [worker.node_id], model_of(lead)))["type"] is (
        FlowResultType.CREATE_ENTRY
    )
    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(
        hass, hass_client, lead.entry
    )
    fleet = diagnostics["fleet"]
    assert fleet["role"] == "lead"
    assert fleet["certificate"] == "**REDACTED**"
    assert fleet["fingerprint"] == "**REDACTED**"
    assert [peer["fingerprint"] for peer in fleet["peers"]] == ["**REDACTED**"]
    shown = json.dumps(diagnostics)
    for key in (lead.fleet.key, worker.fleet.key):
        assert key.fingerprint not in shown
        assert key.certificate.splitlines()[1] not in shown
