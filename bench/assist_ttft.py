"""Time to first token of a voice-assistant turn, turn 2 against turn 1, with a long
Assist prompt: what the node's prefix cache saves when the prompt's prefix stays put.

The prompt is the real one: a Home Assistant instance (2025.4, in-process) exposes a
synthetic home of N entities to Assist, and the integration's own code composes the
system prompt and the tools (custom_components/heatcompute: prompt.py, messages.py).
A node with SmolLM2 runs in-process on 127.0.0.1 (or pass --url and --token).

Each run is one new household (its own name opens the prompt, so turn 1 finds nothing
cached) and measures three requests, each as the time until the first token (a
streamed request with max_tokens=1):
  turn 1                the first question: system prompt, tools, question
  turn 2                the follow-up as the agent sends it: same prefix, then history
  turn 2, HA's layout   the follow-up with Home Assistant 2025.4's own system prompt,
                        which starts with the time to the second: nothing is reused
Ratios are against the same run's turn 1.

    .venv/bin/python bench/assist_ttft.py --entities 120 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
import socket
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "addon"))  # after PYTHONPATH: a node package given there wins

from custom_components.heatcompute.chat_client import chat  # noqa: E402
from custom_components.heatcompute.client import HeatcomputeClient  # noqa: E402
from custom_components.heatcompute.messages import format_tools  # noqa: E402
from custom_components.heatcompute.prompt import compose_system_prompt  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
TOKEN = "bench-token"
AREAS = ("Kitchen", "Living room", "Bedroom", "Office", "Bathroom", "Hall", "Garage", "Garden")
KINDS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("light", "light", "off", {}),
    ("switch", "socket", "off", {}),
    ("cover", "blind", "open", {"device_class": "blind"}),
    ("climate", "thermostat", "heat", {"temperature": 21, "current_temperature": 20.5}),
    ("media_player", "speaker", "idle", {}),
    ("sensor", "temperature", "20.5", {"unit_of_measurement": "°C", "device_class": "temperature"}),
)
QUESTION_1 = "Which lights are in the kitchen?"
ANSWER_1 = "There are two lights in the kitchen."
QUESTION_2 = "And in the bedroom?"


@dataclass(frozen=True, slots=True)
class AssistPrompt:
    instructions: str
    api_prompt: str
    tools: list[dict[str, Any]]


async def build_assist_prompt(entities: int) -> AssistPrompt:
    """Home Assistant's Assist API for a synthetic home of `entities` exposed entities."""
    from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
    from homeassistant.helpers import area_registry as ar, entity_registry as er, llm
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
        async_test_home_assistant,
    )

    async with async_test_home_assistant() as hass:
        for component in ("homeassistant", "intent", "conversation", "light", "climate", "cover"):
            assert await async_setup_component(hass, component, {}), component
        for component in ("media_player", "todo"):
            assert await async_setup_component(hass, component, {}), component
        areas = [ar.async_get(hass).async_create(name).id for name in AREAS]
        registry = er.async_get(hass)
        for i in range(entities):
            domain, kind, state, attributes = KINDS[i % len(KINDS)]
            area = AREAS[(i // len(KINDS)) % len(AREAS)]
            entry = registry.async_get_or_create(domain, "bench", f"{domain}-{i}")
            registry.async_update_entity(entry.entity_id, area_id=areas[AREAS.index(area)])
            name = f"{area} {kind} {i // (len(KINDS) * len(AREAS)) + 1}"
            hass.states.async_set(entry.entity_id, state, {"friendly_name": name, **attributes})
            async_expose_entity(hass, "conversation", entry.entity_id, True)
        context = llm.LLMContext(
            platform="heatcompute",
            context=None,
            user_prompt=QUESTION_1,
            language="en",
            assistant="conversation",
            device_id=None,
        )
        api = await llm.async_get_api(hass, llm.LLM_API_ASSIST, context)
        tools, _ = format_tools(api)
        prompt = AssistPrompt(llm.DEFAULT_INSTRUCTIONS_PROMPT, api.api_prompt, tools)
        await hass.async_stop(force=True)
    return prompt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def start_node(model: Path, data_dir: Path, threads: int | None) -> tuple[Any, int]:
    from aiohttp import web

    from heatcompute_node.api.openai_service import MANAGER_KEY
    from heatcompute_node.app import create_app
    from heatcompute_node.engines.llm.models import EngineSettings
    from heatcompute_node.settings import Settings

    port = free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        hardware="twin",
        zeroconf=False,
        token=TOKEN,
        models=(model,),
    )
    app = create_app(settings)
    if threads is not None:
        app[MANAGER_KEY].settings = EngineSettings(n_threads=threads)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def first_token_s(
    client: HeatcomputeClient, model: str, messages: list[dict[str, Any]], tools: list[Any]
) -> tuple[float, int | None, int | None]:
    """Seconds until the first token; prompt tokens; prompt tokens found in the cache."""
    body = {"model": model, "messages": messages, "tools": tools, "max_tokens": 1, "temperature": 0}
    started = time.monotonic()
    reply = await chat(client, body)
    return time.monotonic() - started, reply.prompt_tokens, reply.cached_tokens


def user(text: str, note: str) -> dict[str, Any]:
    return {"role": "user", "content": f"{text}\n\n({note})"}


async def run(args: argparse.Namespace) -> None:
    prompt = await build_assist_prompt(args.entities)
    runner = None
    if args.url:
        url, token = args.url, args.token
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="bench-node-"))
        runner, port = await start_node(args.model, data_dir, args.threads)
        url, token = f"http://127.0.0.1:{port}", TOKEN
    async with aiohttp.ClientSession() as session:
        host_port = url.removeprefix("http://").rstrip("/")
        host, _, port_text = host_port.rpartition(":")
        client = HeatcomputeClient(host, int(port_text), token, session=session)
        models = (await client.get_json("/v1/models"))["data"]
        model = args.model_id or models[0]["id"]
        # Load the model (and warm the engine) outside the measurement.
        await first_token_s(client, model, [{"role": "user", "content": "Hi"}], [])
        print(
            f"model {model}, {args.entities} exposed entities, {len(prompt.tools)} tools, "
            f"{len(prompt.api_prompt)} characters of Assist prompt"
        )
        header = ("run", "turn", "prompt tok", "cached", "TTFT s", "vs turn 1")
        print("{:>3} {:<22} {:>10} {:>7} {:>8} {:>9}".format(*header))
        ratios: dict[str, list[float]] = {"turn 2": [], "turn 2, HA's layout": []}
        for run_index in range(1, args.runs + 1):
            now = datetime(2026, 1, 15, 18, 0, 0) + timedelta(minutes=run_index)
            # A household of its own: its name opens the prompt, so nothing is cached yet.
            system_prompt = compose_system_prompt(
                instructions=f"You are the voice assistant of household {run_index}.\n"
                + prompt.instructions,
                api_prompt=prompt.api_prompt,
                extra=None,
                now=now,
            )
            system = {"role": "system", "content": system_prompt.stable}
            turn_1 = [system, user(QUESTION_1, system_prompt.volatile)]
            # Turn 2 comes 40 s later: the time note changes, the prefix does not.
            later = compose_system_prompt(
                instructions="", api_prompt=None, extra=None, now=now + timedelta(seconds=40)
            )
            history = [
                system,
                {"role": "user", "content": QUESTION_1},  # the chat log keeps the words as said
                {"role": "assistant", "content": ANSWER_1},
            ]
            turn_2 = [*history, user(QUESTION_2, later.volatile)]
            # Home Assistant 2025.4: "Current time is 18:01:40. ..." first, then the rest.
            ha_system = {
                "role": "system",
                "content": f"Current time is {now + timedelta(seconds=40):%H:%M:%S}. "
                f"Today's date is {now:%Y-%m-%d}.\n{system_prompt.stable}",
            }
            ha_turn_2 = [ha_system, *history[1:], {"role": "user", "content": QUESTION_2}]
            base, tokens, cached = await first_token_s(client, model, turn_1, prompt.tools)
            print(
                f"{run_index:>3} {'turn 1':<22} {tokens:>10} {cached:>7} {base:>8.3f} {1.0:>9.2f}"
            )
            for label, messages in (("turn 2", turn_2), ("turn 2, HA's layout", ha_turn_2)):
                seconds, tokens, cached = await first_token_s(client, model, messages, prompt.tools)
                ratios[label].append(seconds / base)
                print(
                    f"{run_index:>3} {label:<22} {tokens:>10} {cached:>7} {seconds:>8.3f} "
                    f"{seconds / base:>9.2f}"
                )
        print()
        for label, values in ratios.items():
            print(f"median TTFT {label} / turn 1: {statistics.median(values):.3f}")
    if runner is not None:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=120, help="exposed entities")
    parser.add_argument("--runs", type=int, default=3, help="households (each a cold turn 1)")
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="GGUF for the in-process node"
    )
    parser.add_argument("--model-id", help="model to ask (default: the node's first)")
    parser.add_argument(
        "--threads", type=int, help="engine threads of the in-process node (default: all cores)"
    )
    parser.add_argument("--url", help="an already running node, e.g. http://127.0.0.1:8765")
    parser.add_argument("--token", default=TOKEN, help="that node's token")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
