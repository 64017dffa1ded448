"""The assistant's agents and the fleet of nodes they answer on."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.heatcompute.const import DOMAIN

from .conftest import (
    RunningNode,
    is_available,
    is_unavailable,
    make_entry,
    setup_entry,
    wait_for_state,
)


def entity_id(hass: HomeAssistant, domain: str, node: RunningNode, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{node.node.node_id}_{key}")
    assert found is not None
    return found


async def test_an_agent_is_available_while_any_node_can_answer(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> None:
    """Before: availability was computed from the other entries' coordinators, which the
    agent did not listen to, so it showed what was true at its own node's last news."""
    first = RunningNode(tmp_path / "first")
    second = RunningNode(tmp_path / "second")
    await first.start()
    await second.start()
    try:
        await setup_entry(hass, make_entry(first))
        second_entry = make_entry(second)
        await setup_entry(hass, second_entry)
        agent = entity_id(hass, "conversation", first, "assistant")
        await wait_for_state(hass, agent, is_available)

        # Its own node goes: the second one still answers.
        await first.stop()
        await wait_for_state(hass, entity_id(hass, "sensor", first, "power"), is_unavailable)
        assert is_available(hass.states.get(agent).state)  # type: ignore[union-attr]

        # The second goes too: nobody can answer, and the agent says so at once.
        await second.stop()
        await wait_for_state(hass, entity_id(hass, "sensor", second, "power"), is_unavailable)
        await wait_for_state(hass, agent, is_unavailable, timeout=2.0)

        # The second comes back: so does the agent.
        await second.start()
        await wait_for_state(hass, agent, is_available)

        # The second's entry unloads: the fleet has no node that can answer.
        await hass.config_entries.async_unload(second_entry.entry_id)
        await hass.async_block_till_done()
        await wait_for_state(hass, agent, is_unavailable, timeout=2.0)
    finally:
        await first.stop()
        await second.stop()
