"""Make a fresh Home Assistant dev instance ready to look at: owner, then the node.

Uses only Home Assistant's public HTTP APIs, the same ones its frontend uses:
onboarding (creates the owner "dev"), the login flow (on later runs), and the config
entries flow to add the node through the integration's own user step. Idempotent.
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
        # Last: onboarding creates these in the background after its steps return.
        await remove_onboarding_extras(session, args.ha, token)
    args.state.write_text(json.dumps({"node": args.node, "outcome": outcome}) + "\n")
    print(f"[run] heatcompute node in Home Assistant: {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
