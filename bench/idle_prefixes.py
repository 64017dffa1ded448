"""Idle prefixes and decode speed: one stream's tokens/s with ~4,800 cells of finished
conversations cached, kept in the KV cache (before) or in RAM (after), against a node
with nothing cached; and turn 2's time to first token against turn 1's on both.

Three nodes (`python -m heatcompute_node`, same model, threads and slots):
- empty: nothing cached;
- kv: `--llm-prompt-cache-mb 0`, the old prefix cache: idle cells stay in the context,
  and every decode step attends over them;
- ram: the default: a finished request's cells are saved to RAM and leave the context.
kv and ram first answer `--conversations` chats, each with its own ~`--system-tokens`
system prompt (so nothing is shared between them; turn 1, TTFT measured). Then in
interleaved rounds each node streams one completion of `--max-tokens` tokens (EOS
ignored, greedy) and the decode rate (tokens after the first / time after the first) is
recorded; best and median of the rounds. Last, turn 2 of the first conversation.

    .venv/bin/python -m bench.idle_prefixes [--conversations 4] [--system-tokens 1200]
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
import json
import os
from pathlib import Path
import statistics
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

from bench.llm_throughput import (
    DEFAULT_MODEL,
    PROMPT,
    SYSTEM_WORDS,
    TOKEN,
    free_port,
    start_node,
    wait_ready,
)

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
FAMILIES = ("Berger", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Silva", "Haddad")


@dataclass(frozen=True, slots=True)
class Stream:
    ttft_s: float
    tokens: int
    decode_s: float
    """From the first token to the last."""
    prompt_tokens: int | None
    cached_tokens: int | None
    text: str

    @property
    def decode_tok_s(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


async def stream(
    session: aiohttp.ClientSession, base: str, path: str, body: dict[str, Any]
) -> Stream:
    """One streamed completion: time to first token, tokens, decode time, usage."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = last = None
    tokens, usage, text = 0, None, []
    async with session.post(f"{base}{path}", json=body, headers=HEADERS) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            usage = data.get("usage") or usage
            for choice in data.get("choices", []):
                piece = choice.get("text") or (choice.get("delta") or {}).get("content")
                if piece:
                    last = time.perf_counter()
                    first = first or last
                    tokens += 1
                    text.append(piece)
    now = time.perf_counter()
    if usage:
        tokens = usage["completion_tokens"]
    details = (usage or {}).get("prompt_tokens_details") or {}
    return Stream(
        ttft_s=(first or now) - started,
        tokens=tokens,
        decode_s=(last or now) - (first or now),
        prompt_tokens=(usage or {}).get("prompt_tokens"),
        cached_tokens=details.get("cached_tokens"),
        text="".join(text),
    )


def system_prompt(family: str, tokens: int) -> str:
    words = SYSTEM_WORDS.split()
    # About 1.25 tokens per word of this text; the family's name opens it, so no two
    # conversations share more than the template's first tokens.
    body = " ".join(words[i % len(words)] for i in range(int(tokens / 1.25)))
    return f"The home of the {family} family. {body}"


def chat(system: str, *turns: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}]
    for i, content in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": content})
    return messages


async def kv_cells(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/api/status", headers=HEADERS) as response:
        status = await response.json()
    return sum(int(model["kv_cells_used"]) for model in status.get("llm", {}).values())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--system-tokens", type=int, default=1200)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"model {args.model.name}, threads {args.threads}, {args.conversations} conversations"
        f" of ~{args.system_tokens} tokens, {args.max_tokens}-token streams, {args.rounds} rounds"
    )
    modes = {"empty": [], "kv": ["--llm-prompt-cache-mb", "0"], "ram": []}
    data = tempfile.TemporaryDirectory()
    nodes: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        for name, extra in modes.items():
            port = free_port()
            extra_args = ["--llm-slots", "16", *extra]
            process = start_node(args.model, port, Path(data.name) / name, args.threads, extra_args)
            nodes[name] = (f"http://127.0.0.1:{port}", process)
        for base, process in nodes.values():
            await wait_ready(f"{base}/v1/models", process, HEADERS)
        await run(args, {name: base for name, (base, _) in nodes.items()})
    finally:
        for _, process in nodes.values():
            process.terminate()
            process.wait()
        data.cleanup()


async def run(args: argparse.Namespace, bases: dict[str, str]) -> None:
    decode_body = {
        "prompt": PROMPT,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    families = [FAMILIES[i % len(FAMILIES)] + f" {i}" for i in range(args.conversations)]
    systems = [system_prompt(f, args.system_tokens) for f in families]
    question_1, question_2 = "Is the kitchen light on?", "And how warm is the living room?"
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for base in bases.values():  # warm-up: the first decode of each shape builds graphs
            await stream(session, base, "/v1/completions", {**decode_body, "max_tokens": 4})
        turn_1: dict[str, list[Stream]] = {"kv": [], "ram": []}
        for name, streams in turn_1.items():
            for system in systems:
                body = {"messages": chat(system, question_1), "max_tokens": 1, "temperature": 0}
                streams.append(await stream(session, bases[name], "/v1/chat/completions", body))
        cells = {name: await kv_cells(session, base) for name, base in bases.items()}
        prompt_tokens = sum(s.prompt_tokens or 0 for s in turn_1["kv"])
        print(f"cached conversations: {prompt_tokens} prompt tokens; KV cells in use after:")
        print("  " + ", ".join(f"{name} {n}" for name, n in cells.items()))

        rates: dict[str, list[float]] = {name: [] for name in bases}
        for round_no in range(1, args.rounds + 1):
            for name, base in bases.items():
                result = await stream(session, base, "/v1/completions", decode_body)
                assert result.tokens == args.max_tokens, result
                rates[name].append(result.decode_tok_s)
            print(
                f"  round {round_no}: "
                + ", ".join(f"{name} {rates[name][-1]:6.1f}" for name in bases)
                + " tok/s"
            )

        turn_2: dict[str, Stream] = {}
        for name in turn_1:
            first = turn_1[name][0]
            body = {
                "messages": chat(systems[0], question_1, first.text, question_2),
                "max_tokens": 1,
                "temperature": 0,
            }
            turn_2[name] = await stream(session, bases[name], "/v1/chat/completions", body)
        cells_after = {name: await kv_cells(session, base) for name, base in bases.items()}

    labels = {
        "empty": "nothing cached",
        "kv": "idle cells in the KV cache (before)",
        "ram": "idle prefixes in RAM (after)",
    }
    print(f"\n1-stream decode, tokens/s {'best':>8} {'median':>8}  vs empty (best, median)")
    best = {name: max(r) for name, r in rates.items()}
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name in bases:
        print(
            f"  {labels[name]:36} {best[name]:8.1f} {median[name]:8.1f}  "
            f"{best[name] / best['empty']:5.2f}x {median[name] / median['empty']:5.2f}x"
        )
    print("\nturn 2 vs turn 1 (time to first token)")
    for name in turn_1:
        t1, t2 = turn_1[name][0], turn_2[name]
        print(
            f"  {labels[name]:36} turn 1 {t1.ttft_s:6.3f} s ({t1.prompt_tokens} tokens), "
            f"turn 2 {t2.ttft_s:6.3f} s ({t2.cached_tokens} of {t2.prompt_tokens} cached): "
            f"{t2.ttft_s / t1.ttft_s:5.3f}x"
        )
    print("KV cells in use at the end: " + ", ".join(f"{n} {c}" for n, c in cells_after.items()))


if __name__ == "__main__":
    asyncio.run(main())
