"""Make a fresh Home Assistant dev instance ready to look at: owner, the node, a heater
that heats, and a dashboard.

Uses only Home Assistant's public HTTP and WebSocket APIs, the same ones its frontend
uses: onboarding (creates the owner "dev"), the login flow (on later runs), the config
entries flow to add the node through the integration's own user step, its options flow
to point the thermostat at the room temperature the node's twin simulates, and the
dashboard and energy settings. Idempotent: what a user changed later stays as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import sys
from typing import Any

import aiohttp
from yarl import URL

from scripts.dev_dashboard import ENTITY_KEYS, dashboard

USERNAME = "dev"
PASSWORD = "heatcompute"
READY_TIMEOUT_S = 300


async def wait_until_up(session: aiohttp.ClientSession, url: str, what: str) -> None:
    """Poll until the server answers at all (bounded; HA's first start takes a while)."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
    raise RuntimeError(f"{what} did not come up")  # pragma: no cover - timeout raises first


async def access_token(session: aiohttp.ClientSession, ha: str) -> str:
    client_id = f"{ha}/"
    async with session.get(f"{ha}/api/onboarding") as response:
        steps = await response.json() if response.status == 200 else []
    user_step = next((s for s in steps if s["step"] == "user"), None)
    if user_step is not None and not user_step["done"]:
        payload = {
            "client_id": client_id,
            "name": "Dev",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        }
        async with session.post(f"{ha}/api/onboarding/users", json=payload) as response:
            response.raise_for_status()
            code = (await response.json())["auth_code"]
        token = await _exchange(session, ha, client_id, code)
        headers = {"Authorization": f"Bearer {token}"}
        for step in ("core_config", "analytics"):
            async with session.post(f"{ha}/api/onboarding/{step}", headers=headers, json={}):
                pass
        async with session.post(
            f"{ha}/api/onboarding/integration",
            headers=headers,
            json={"client_id": client_id, "redirect_uri": f"{ha}/?auth_callback=1"},
        ):
            pass
        return token
    flow_body = {
        "client_id": client_id,
        "handler": ["homeassistant", None],
        "redirect_uri": f"{ha}/?auth_callback=1",
    }
    async with session.post(f"{ha}/auth/login_flow", json=flow_body) as response:
        flow = await response.json()
    async with session.post(
        f"{ha}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": client_id, "username": USERNAME, "password": PASSWORD},
    ) as response:
        result = await response.json()
    if result.get("type") != "create_entry":
        raise RuntimeError(f"cannot log in as {USERNAME}: {result}")
    return await _exchange(session, ha, client_id, result["result"])


async def _exchange(session: aiohttp.ClientSession, ha: str, client_id: str, code: str) -> str:
    data = {"grant_type": "authorization_code", "code": code, "client_id": client_id}
    async with session.post(f"{ha}/auth/token", data=data) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


# Onboarding adds these; each would reach for the internet (weather, radio, TTS), which a
# local dev instance on a closed network has no use for.
ONBOARDING_EXTRAS = frozenset({"met", "radio_browser", "google_translate", "shopping_list"})


async def remove_onboarding_extras(session: aiohttp.ClientSession, ha: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{ha}/api/config/config_entries/entry", headers=headers) as response:
        entries: list[dict[str, Any]] = await response.json()
    for entry in entries:
        if entry["domain"] in ONBOARDING_EXTRAS:
            url = f"{ha}/api/config/config_entries/entry/{entry['entry_id']}"
            async with session.delete(url, headers=headers):
                pass


async def add_node(
    session: aiohttp.ClientSession, ha: str, token: str, node: str, node_token: str
) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{ha}/api/config/config_entries/entry", headers=headers) as response:
        entries: list[dict[str, Any]] = await response.json()
    if any(entry["domain"] == "heatcompute" for entry in entries):
        return "already set up"
    async with session.post(
        f"{ha}/api/config/config_entries/flow",
        headers=headers,
        json={"handler": "heatcompute", "show_advanced_options": False},
    ) as response:
        flow = await response.json()
    if response.status != 200:
        raise RuntimeError(f"cannot start the heatcompute config flow: {flow}")
    url = URL(node)
    async with session.post(
        f"{ha}/api/config/config_entries/flow/{flow['flow_id']}",
        headers=headers,
        json={"host": url.host, "port": url.port, "token": node_token},
    ) as response:
        result = await response.json()
    if result.get("type") != "create_entry":
        raise RuntimeError(f"the heatcompute config flow did not finish: {result}")
    return f"added as {result['title']!r}"


class HomeAssistantSocket:
    """Home Assistant's WebSocket API: one authenticated connection, numbered commands."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 1

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, ha: str, token: str
    ) -> HomeAssistantSocket:
        ws = await session.ws_connect(f"{ha}/api/websocket")
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": token})
        if (await ws.receive_json())["type"] != "auth_ok":
            raise RuntimeError("Home Assistant refused the WebSocket login")
        return cls(ws)

    async def call(self, kind: str, **fields: Any) -> Any:
        """The command's result; raises with Home Assistant's error otherwise."""
        message_id, self._next_id = self._next_id, self._next_id + 1
        await self._ws.send_json({"id": message_id, "type": kind, **fields})
        while True:
            answer = await self._ws.receive_json()
            if answer.get("id") == message_id:
                break
        if not answer.get("success"):
            raise HomeAssistantCommandError(answer.get("error") or {})
        return answer.get("result")

    async def close(self) -> None:
        await self._ws.close()


class HomeAssistantCommandError(RuntimeError):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")


async def node_entities(socket: HomeAssistantSocket, entry_id: str) -> dict[str, str]:
    """The node's entity ids by the key their unique id ends in."""
    found: dict[str, str] = {}
    for entity in await socket.call("config/entity_registry/list"):
        if entity.get("config_entry_id") != entry_id:
            continue
        # Unique ids are "<node id>_<key>" (the node id is hex: no underscore).
        key = str(entity.get("unique_id", "")).partition("_")[2]
        if key in ENTITY_KEYS:
            found[key] = entity["entity_id"]
    return found


async def wait_for_entities(
    socket: HomeAssistantSocket, entry_id: str, keys: tuple[str, ...]
) -> dict[str, str]:
    """The node's entities, once the integration has registered the ones needed (it
    sets up in the background after its config flow)."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            found = await node_entities(socket, entry_id)
            if all(key in found for key in keys):
                return found
            await asyncio.sleep(1)


async def point_thermostat_at(
    session: aiohttp.ClientSession, ha: str, token: str, entry_id: str, room: str
) -> bool:
    """Set the thermostat's room sensor through the options flow, unless one is set.

    The options form shows the current options as suggested values: that is how a
    user sees them too.
    """
    headers = {"Authorization": f"Bearer {token}"}
    flows = f"{ha}/api/config/config_entries/options/flow"
    async with session.post(flows, headers=headers, json={"handler": entry_id}) as r:
        flow = await r.json()
    if flow.get("type") != "form":
        raise RuntimeError(f"cannot open the heater's options: {flow}")
    field: dict[str, Any] = next(
        (f for f in flow["data_schema"] if f.get("name") == "room_sensor"), {}
    )
    if (field.get("description") or {}).get("suggested_value"):
        async with session.delete(f"{flows}/{flow['flow_id']}", headers=headers):
            return False
    # The dev instance's voice assistant may control the house, so a newcomer can ask it
    # to heat (and, on the shipped SmolLM2, sees the repair that offers a model that acts).
    options = {"room_sensor": room, "assistant": {"llm_hass_api": "assist"}}
    async with session.post(f"{flows}/{flow['flow_id']}", headers=headers, json=options) as r:
        result = await r.json()
    if result.get("type") != "create_entry":
        raise RuntimeError(f"the heater's options were not saved: {result}")
    return True


async def switch_to_heat(session: aiohttp.ClientSession, ha: str, token: str, climate: str) -> None:
    """Once the reloaded thermostat reads the room, ask it to heat."""
    headers = {"Authorization": f"Bearer {token}"}
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            async with session.get(f"{ha}/api/states/{climate}", headers=headers) as r:
                climate_state = await r.json() if r.status == 200 else {}
            if climate_state.get("attributes", {}).get("current_temperature") is not None:
                break
            await asyncio.sleep(1)
    async with session.post(
        f"{ha}/api/services/climate/set_hvac_mode",
        headers=headers,
        json={"entity_id": climate, "hvac_mode": "heat"},
    ) as r:
        r.raise_for_status()


# Work for the heat: the node runs it while the room wants heat, and pauses it when the
# room is warm (no deadline). Without any work a heater that "heats" would draw idle power.
FIRST_JOB: dict[str, Any] = {
    "kind": "completions",
    "items": [f"A story about a warm room on a cold night, part {i}:" for i in range(1, 401)],
    "max_tokens": 64,
    "metadata": {"source": "scripts/dev_bootstrap.py"},
}


async def submit_first_job(
    session: aiohttp.ClientSession, ha: str, token: str, entry_id: str
) -> None:
    """Through the integration's own action, as an automation would."""
    async with session.post(
        f"{ha}/api/services/heatcompute/submit_job",
        headers={"Authorization": f"Bearer {token}"},
        json={"config_entry_id": entry_id, "job": FIRST_JOB},
    ) as r:
        r.raise_for_status()


async def set_up_the_heater(session: aiohttp.ClientSession, ha: str, token: str) -> list[str]:
    """Room sensor, heat, dashboard and energy: each only where nothing is set yet."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{ha}/api/config/config_entries/entry", headers=headers) as r:
        entries: list[dict[str, Any]] = await r.json()
    entry = next(e for e in entries if e["domain"] == "heatcompute")
    done: list[str] = []
    socket = await HomeAssistantSocket.connect(session, ha, token)
    try:
        entities = await wait_for_entities(socket, entry["entry_id"], ("heater", "power"))
        room = entities.get("room_temperature")
        if room is not None and await point_thermostat_at(
            session, ha, token, entry["entry_id"], room
        ):
            await switch_to_heat(session, ha, token, entities["heater"])
            await submit_first_job(session, ha, token, entry["entry_id"])
            done.append(f"thermostat on {room}, heating, a first job queued")
        try:
            await socket.call("lovelace/config", url_path=None)
        except HomeAssistantCommandError as err:
            if err.code != "config_not_found":
                raise
            title = entry.get("title") or "heatcompute"
            await socket.call(
                "lovelace/config/save", url_path=None, config=dashboard(entities, title)
            )
            done.append("dashboard")
        try:
            prefs = await socket.call("energy/get_prefs")
        except HomeAssistantCommandError as err:
            if err.code != "not_found":  # a fresh instance has no energy settings yet
                raise
            prefs = {}
        if not prefs.get("device_consumption") and "energy" in entities:
            await socket.call(
                "energy/save_prefs",
                device_consumption=[{"stat_consumption": entities["energy"]}],
            )
            done.append("energy dashboard")
    finally:
        await socket.close()
    return done


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node", required=True)
    parser.add_argument("--node-token-file", type=Path, required=True)
    parser.add_argument("--ha", required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_until_up(session, f"{args.node}/health", "the node")
        await wait_until_up(session, f"{args.ha}/api/onboarding", "Home Assistant")
        token = await access_token(session, args.ha)
        node_token = args.node_token_file.read_text(encoding="utf-8").strip()
        outcome = await add_node(session, args.ha, token, args.node, node_token)
        if set_up := await set_up_the_heater(session, args.ha, token):
            outcome += "; " + ", ".join(set_up)
        # Last: onboarding creates these in the background after its steps return.
        await remove_onboarding_extras(session, args.ha, token)
    args.state.write_text(json.dumps({"node": args.node, "outcome": outcome}) + "\n")
    print(f"[run] heatcompute node in Home Assistant: {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
