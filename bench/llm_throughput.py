"""LLM throughput: the node against llama.cpp's own server and llama-cpp-python's, one run.

Aggregate generated tokens/s at 1, 4, 8 (and 16) concurrent streams and p95 time to
first token, for (a) the node (`python -m heatcompute_node`), (e) `llama-server`, llama.cpp's
own server, built from the very llama.cpp sources of the installed wheel with the same
flags (bench/llama_server.py), with a unified KV cache and the node's slots, context and
threads, (b) llama-cpp-python's bundled server (`python -m llama_cpp.server`) and (c)
`llama_cpp.Llama` in this process; a fixed `max_tokens` with EOS ignored, greedy
sampling. Then the prefix cache: a 1,500 token system prompt sent twice (second turn
TTFT vs first). Prints ratios against the baselines measured in the same run, and (d)
llama.cpp's decode alone at each concurrency: the most these cores give, so the node's
overhead and the hardware's limit can be told apart. All are measured in interleaved
rounds (best and median of `--rounds`); `--contenders` picks some.

    .venv/bin/python bench/llm_throughput.py [--model PATH] [--max-tokens 64]
        [--streams 1,4,8,16] [--contenders node,llama-server,ceiling]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
TOKEN = "bench-token-0123456789abcdef"
PROMPT = "Write a long story about a warm house in winter, heated by a computer."
SYSTEM_WORDS = (
    "You are the voice assistant of a smart home. You control lights, heating, blinds and "
    "media players, you answer questions about the weather and the calendar, and you keep "
    "answers short, friendly and precise. "
)


@dataclass(frozen=True, slots=True)
class Run:
    streams: int
    tokens: int
    seconds: float
    ttfts: list[float]

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def ttft_p95(self) -> float:
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, process: subprocess.Popen[bytes], headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with session.get(url, headers=headers) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


async def stream_once(
    session: aiohttp.ClientSession, url: str, body: dict[str, object], headers: dict[str, str]
) -> tuple[float, int]:
    """(TTFT, completion tokens) of one streamed completion."""
    started = time.perf_counter()
    ttft, chunks, usage = None, 0, None
    async with session.post(url, json={**body, "stream": True}, headers=headers) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]["completion_tokens"]
            for choice in data.get("choices", []):
                text = choice.get("text") or (choice.get("delta") or {}).get("content")
                if text:
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - started
    return (ttft if ttft is not None else time.perf_counter() - started), usage or chunks


async def http_run(url: str, body: dict[str, object], headers: dict[str, str], streams: int) -> Run:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(stream_once(session, url, body, headers) for _ in range(streams))
        )
        seconds = time.perf_counter() - started
    return Run(streams, sum(n for _, n in results), seconds, [t for t, _ in results])


def start_node(
    model: Path, port: int, data_dir: Path, threads: int, extra_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HEATCOMPUTE_TOKEN": TOKEN,
        "HEATCOMPUTE_LLM_THREADS": str(threads),  # the node's --llm-threads
        "PYTHONPATH": str(ROOT / "addon"),
    }
    cmd = [sys.executable, "-m", "heatcompute_node", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--model", str(model), "--no-zeroconf"]
    cmd += ["--hardware", "twin", "--log-level", "WARNING", *extra_args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_llama_cpp_server(model: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--n_ctx", "4096", "--n_threads", str(threads)]
    cmd += ["--n_threads_batch", str(threads), "--verbose", "False"]
    # By default a new request interrupts the running stream; queueing is the baseline.
    cmd += ["--interrupt_requests", "False"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_llama_server(
    binary: Path, model: Path, port: int, threads: int, slots: int, context: int
) -> subprocess.Popen[bytes]:
    """llama.cpp's server shaped like the node's engine: one unified KV cache of
    `context` cells for `slots` sequences, batches of 512, the same threads."""
    cmd = [str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--threads", str(threads), "--threads-batch", str(threads)]
    cmd += ["--ctx-size", str(context), "--parallel", str(slots), "--kv-unified"]
    cmd += ["--batch-size", "512", "--ubatch-size", "512", "--no-webui"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class RawLlama:
    """(c) `llama_cpp.Llama` in this process: one sequence, its own sampling loop."""

    def __init__(self, model: Path, threads: int, max_tokens: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(str(model), n_ctx=4096, n_threads=threads, verbose=False)
        self.eos = self.llm.token_eos()
        self.max_tokens = max_tokens
        self.llm.create_completion(PROMPT, max_tokens=4, temperature=0)  # warm-up

    def run(self) -> Run:
        started = time.perf_counter()
        ttft, tokens = None, 0
        for _ in self.llm.create_completion(
            PROMPT,
            max_tokens=self.max_tokens,
            temperature=0,
            logit_bias={self.eos: -1e9},
            stream=True,
        ):
            tokens += 1
            if ttft is None:
                ttft = time.perf_counter() - started
        return Run(1, tokens, time.perf_counter() - started, [ttft or 0.0])


class KernelCeiling:
    """(d) llama.cpp's decode alone: n sequences, one token each per `llama_decode`.

    No server, no sampler, no detokenising: the most tokens/s these cores can give at n
    streams, whatever any scheduler does above the kernels. Ratios against it tell what
    is the node's overhead and what is the hardware.
    """

    def __init__(
        self, model: Path, threads: int, max_tokens: int, concurrency: Sequence[int]
    ) -> None:
        sys.path.insert(0, str(ROOT / "addon"))  # the node's own ctypes wrappers
        from heatcompute_node.engines.llm.native import (
            ContextConfig,
            LlamaContext,
            LlamaModel,
            TokenBatch,
        )

        self.model = LlamaModel(model)
        config = ContextConfig(n_ctx=4096, n_batch=512, n_seq_max=16, n_threads=threads)
        self.ctx = LlamaContext(self.model, config)
        self.batch = TokenBatch(512)
        self.max_tokens = max_tokens
        self.prompt = list(range(100, 116))
        for streams in concurrency:  # warm-up: the first decode of each shape builds its graph
            self.run(streams)

    def run(self, streams: int) -> Run:
        self.ctx.clear()
        self.batch.clear()
        for seq in range(streams):
            self.batch.add_span(self.prompt, 0, seq, logits_last=True)
        started = time.perf_counter()
        if self.ctx.decode(self.batch) != 0:
            raise RuntimeError("prefill failed")
        ttft = time.perf_counter() - started
        # Only the decode steps count: the ceiling of generation, not of prefill.
        started = time.perf_counter()
        for step in range(self.max_tokens):
            self.batch.clear()
            for seq in range(streams):
                self.batch.add(200 + step, len(self.prompt) + step, seq, logits=True)
            if self.ctx.decode(self.batch) != 0:
                raise RuntimeError("decode failed")
        seconds = time.perf_counter() - started
        return Run(streams, streams * self.max_tokens, seconds, [ttft] * streams)


async def bench_prefix(
    base: str, headers: dict[str, str], system_tokens: int
) -> tuple[float, float]:
    words = SYSTEM_WORDS.split()
    # About 1.25 tokens per word of this text.
    system = " ".join(words[i % len(words)] for i in range(int(system_tokens / 1.25)))
    url = f"{base}/v1/chat/completions"
    ttfts = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        for question in ("Is the kitchen light on?", "How warm is the living room?"):
            body = {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ],
                "max_tokens": 4,
                "temperature": 0,
                "ignore_eos": True,
            }
            ttft, _ = await stream_once(session, url, body, headers)
            ttfts.append(ttft)
    return ttfts[0], ttfts[1]


def best(runs: list[Run]) -> Run:
    # Other work on a shared machine only ever slows a run down: keep the fastest.
    return max(runs, key=lambda r: r.tok_s)


def median(runs: list[Run]) -> float:
    return statistics.median(r.tok_s for r in runs)


CONTENDERS = ("node", "llama-server", "llama_cpp.server", "raw", "ceiling")
LABELS = {
    "node": "(a) node",
    "llama-server": "(e) llama-server",
    "llama_cpp.server": "(b) llama_cpp.server",
    "raw": "(c) raw Llama",
    "ceiling": "(d) llama.cpp decode alone",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--slots", type=int, default=16, help="node and llama-server slots")
    parser.add_argument("--context", type=int, default=8192, help="node and llama-server KV cells")
    parser.add_argument("--system-tokens", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3, help="best and median of this many")
    parser.add_argument("--streams", default="1,4,8", help="concurrencies, comma-separated")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"some of {','.join(CONTENDERS)}"
    )
    args = parser.parse_args()
    args.streams = [int(n) for n in args.streams.split(",")]
    args.contenders = [c for c in CONTENDERS if c in args.contenders.split(",")]
    if "node" not in args.contenders:
        parser.error("the node is what is measured: --contenders must name it")
    return args


async def main() -> None:
    args = parse_args()
    concurrency: list[int] = args.streams
    contenders: list[str] = args.contenders
    body: dict[str, object] = {"prompt": PROMPT, "max_tokens": args.max_tokens, "temperature": 0}
    print(
        f"model {args.model.name}, max_tokens {args.max_tokens}, threads {args.threads}, "
        f"slots {args.slots}, context {args.context}, rounds {args.rounds}"
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    raw = RawLlama(args.model, args.threads, args.max_tokens) if "raw" in contenders else None
    ceiling = (
        KernelCeiling(args.model, args.threads, args.max_tokens, concurrency)
        if "ceiling" in contenders
        else None
    )
    # (name, base URL, process, completion body, headers) of each server.
    servers: list[tuple[str, str, subprocess.Popen[bytes], dict[str, object], dict[str, str]]] = []
    data_dir = tempfile.TemporaryDirectory()
    try:
        port = free_port()
        node = start_node(
            args.model, port, Path(data_dir.name), args.threads, ["--llm-slots", str(args.slots)]
        )
        node_base = f"http://127.0.0.1:{port}"
        servers.append(("node", node_base, node, {**body, "ignore_eos": True}, headers))
        if "llama-server" in contenders:
            sys.path.insert(0, str(ROOT))  # run as a script, bench/ is not a package then
            from bench.llama_server import ensure_llama_server

            binary = ensure_llama_server()
            port = free_port()
            process = start_llama_server(
                binary, args.model, port, args.threads, args.slots, args.context
            )
            servers.append(
                (
                    "llama-server",
                    f"http://127.0.0.1:{port}",
                    process,
                    {**body, "ignore_eos": True},
                    {},
                )
            )
        if "llama_cpp.server" in contenders:
            import llama_cpp

            eos = llama_cpp.Llama(str(args.model), vocab_only=True, verbose=False).token_eos()
            port = free_port()
            process = start_llama_cpp_server(args.model, port, args.threads)
            # llama_cpp.server has no ignore_eos: a large negative bias on EOS does the same.
            servers.append(
                (
                    "llama_cpp.server",
                    f"http://127.0.0.1:{port}",
                    process,
                    {**body, "logit_bias": {str(eos): -100.0}},
                    {},
                )
            )
        for _, base, process, server_body, server_headers in servers:
            await wait_ready(f"{base}/v1/models", process, server_headers)
            await http_run(
                f"{base}/v1/completions", {**server_body, "max_tokens": 4}, server_headers, 1
            )  # warm-up
        table: dict[str, dict[int, list[Run]]] = {
            name: {n: [] for n in concurrency} for name in contenders
        }
        # Interleaved: every round measures every contender at every concurrency back to
        # back, so a burst of load from elsewhere hits all of them, not one.
        for round_no in range(1, args.rounds + 1):
            for n in concurrency:
                if ceiling is not None:
                    table["ceiling"][n].append(ceiling.run(n))
                if raw is not None and n == 1:
                    table["raw"][n].append(raw.run())
                for name, base, _, server_body, server_headers in servers:
                    table[name][n].append(
                        await http_run(f"{base}/v1/completions", server_body, server_headers, n)
                    )
            print(f"  round {round_no}/{args.rounds} done")
        first, second = await bench_prefix(node_base, headers, args.system_tokens)
    finally:
        for _, _, process, _, _ in servers:
            process.terminate()
            process.wait()
        data_dir.cleanup()
    report(table, concurrency, first, second)


def report(
    table: dict[str, dict[int, list[Run]]], concurrency: list[int], first: float, second: float
) -> None:
    rows = {name: {n: best(r) for n, r in runs.items() if r} for name, runs in table.items()}
    print(f"\n{'best tokens/s (p95 TTFT)':30}" + "".join(f"{n:>22}" for n in concurrency))
    for name in table:
        cells = [
            f"{rows[name][n].tok_s:8.1f} ({rows[name][n].ttft_p95:6.3f} s)"
            if n in rows[name]
            else "-"
            for n in concurrency
        ]
        print(f"{LABELS[name]:30}" + "".join(f"{c:>22}" for c in cells))
    print(f"{'median tokens/s':30}")
    for name, runs in table.items():
        cells = [f"{median(runs[n]):8.1f}" if runs[n] else "-" for n in concurrency]
        print(f"{LABELS[name]:30}" + "".join(f"{c:>22}" for c in cells))
    print(f"  prefix cache: TTFT first turn {first:.3f} s, second turn {second:.3f} s")

    ours = rows["node"]
    print("\nratios (goal in brackets)")
    if "llama-server" in rows:
        for n in concurrency:
            by_best = ours[n].tok_s / rows["llama-server"][n].tok_s
            by_median = median(table["node"][n]) / median(table["llama-server"][n])
            print(
                f"  node / llama-server at {n:2} streams:  best {by_best:5.2f}"
                f"  median {by_median:5.2f}  [>= 1.0]"
            )
    if "raw" in rows and 1 in ours:
        ratio = ours[1].tok_s / rows["raw"][1].tok_s
        print(f"  node 1 stream / raw Llama:          {ratio:5.2f}  [>= 0.95]")
    if "llama_cpp.server" in rows and 4 in ours:
        ratio = ours[4].tok_s / rows["llama_cpp.server"][4].tok_s
        print(f"  node 4 streams / llama_cpp.server:  {ratio:5.2f}  [>= 3.5]")
    if 8 in ours and 1 in ours:
        print(
            f"  node 8 streams / node 1 stream:     {ours[8].tok_s / ours[1].tok_s:5.2f}  [>= 2.3]"
        )
    print(f"  second-turn TTFT / first-turn TTFT: {second / first:5.2f}  [<= 0.25]")
    if "ceiling" in rows:
        ceil = rows["ceiling"]
        print("\nwhat the cores allow (llama.cpp decode alone, same run)")
        if 8 in ceil and 1 in ceil:
            print(f"  ceiling 8 / ceiling 1:              {ceil[8].tok_s / ceil[1].tok_s:5.2f}")
        for n in concurrency:
            print(f"  node / ceiling at {n:2} streams:       {ours[n].tok_s / ceil[n].tok_s:5.2f}")
    if 4 in ours and 8 in ours:
        print(
            f"  p95 TTFT at 4 streams: node {ours[4].ttft_p95:.3f} s;"
            f" median node TTFT at 8: {statistics.median(ours[8].ttfts):.3f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
