"""Where a 1-stream decode step's time goes outside `llama_decode`, in the node's engine.

Runs the node's scheduler in this process on the default model (one streamed, greedy
request of `--tokens` tokens, EOS ignored; each delta made into an SSE chunk on the
event loop as the HTTP handler does) and times, per token: `llama_decode`, sampling,
the work after a token (text, the event handed to the loop), filling the batch, and
the event loop thread's CPU. `--addon` imports another tree of the node (an older
commit's `addon/`), so two versions can be measured in turns on the same machine.

    PYTHONPATH=addon .venv/bin/python -m bench.engine_step --rounds 5
    .venv/bin/python bench/engine_step.py --addon /tmp/old/addon   # the same, older code
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
PROMPT = "Write a long story about a warm house in winter, heated by a computer."


def timed(
    owner: Any, name: str, totals: dict[str, float], calls: list[float] | None = None
) -> None:
    """Wrap `owner.name` so each call's wall time adds to totals[name] (and to calls)."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            totals[name] = totals.get(name, 0.0) + took
            if calls is not None:
                calls.append(took)

    setattr(owner, name, wrapper)


async def measure(args: argparse.Namespace) -> list[dict[str, float]]:
    from heatcompute_node.engines.llm import scheduler as engine
    from heatcompute_node.engines.llm.native import ContextConfig, LlamaContext
    from heatcompute_node.engines.llm.request import (
        GenerationHandle,
        GenerationRequest,
        TextDelta,
    )
    from heatcompute_node.engines.llm.runtime import Runtime
    from heatcompute_node.engines.llm.sampling import Sampler, SamplingParams
    from heatcompute_node.engines.llm.tokenizer import Tokenizer

    totals: dict[str, float] = {}
    timed(LlamaContext, "decode", totals)
    timed(Sampler, "sample", totals)
    timed(engine.Scheduler, "_after_token", totals)
    timed(engine.Scheduler, "_fill_batch", totals)
    # Handing a token's event to the loop: the median is what a token pays when nothing
    # else on the machine interrupts (means are dominated by preemption under load).
    pushes: list[float] = []
    timed(GenerationHandle, "push", totals, pushes)
    tokenizer = Tokenizer(args.model)
    context = ContextConfig(n_ctx=8192, n_batch=512, n_seq_max=16, n_threads=args.threads)
    scheduler = engine.Scheduler(
        tokenizer,
        lambda: Runtime.load(args.model, context),
        engine.SchedulerConfig(n_slots=16, n_threads=args.threads),
    )
    prompt = tuple(tokenizer.tokenize(PROMPT, add_special=True))
    base = {"id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "m"}
    rounds = []
    try:
        for _ in range(args.rounds + 1):  # the first warms up
            totals.clear()
            pushes.clear()
            cpu, started = time.thread_time(), time.perf_counter()
            handle = scheduler.submit(
                GenerationRequest(
                    prompt=prompt,
                    max_tokens=args.tokens,
                    sampling=SamplingParams(temperature=0),
                    ignore_eos=True,
                )
            )
            async for event in handle:
                if isinstance(event, TextDelta):
                    choice = {"index": 0, "text": event.text, "finish_reason": None}
                    json.dumps({**base, "choices": [choice]}).encode()
            seconds = time.perf_counter() - started
            n = args.tokens
            rounds.append(
                {
                    "tok_s": n / seconds,
                    "decode_us": totals["decode"] / n * 1e6,
                    "sample_us": totals["sample"] / n * 1e6,
                    "after_token_us": totals["_after_token"] / n * 1e6,
                    "fill_us": totals["_fill_batch"] / n * 1e6,
                    "loop_cpu_us": (time.thread_time() - cpu) / n * 1e6,
                    "push_median_us": statistics.median(pushes) * 1e6,
                    "push_p90_us": statistics.quantiles(pushes, n=10)[-1] * 1e6,
                }
            )
    finally:
        scheduler.stop()
    return rounds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--addon", type=Path, default=ROOT / "addon", help="the node's tree")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON line of medians")
    args = parser.parse_args()
    sys.path.insert(0, str(args.addon))
    rounds = asyncio.run(measure(args))
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    if args.json:
        print(json.dumps({"addon": str(args.addon), **medians}))
        return
    print(f"{args.addon}: median of {len(rounds)} rounds, {args.tokens} tokens, 1 stream")
    for key, value in medians.items():
        print(f"  {key:15} {value:9.1f}")


if __name__ == "__main__":
    main()
