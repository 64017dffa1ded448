"""Sampling cost per token: llama.cpp's sampler chain against the numpy fast path.

SmolLM2 decodes 8 prompts in one batch, as the engine does with 8 sequences; then each
parameter set samples from those 8 real logits rows, once through the chain
(`Sampler(fast_path=False)`: `llama_sampler_sample`) and once through the fast path
(`Sampler`), in interleaved rounds; best of `--rounds`. Last, the decode step itself
(8 sequences, one token each), to show what share of a step sampling takes.

    .venv/bin/python bench/sampling.py [--model PATH] [--rounds 5] [--tokens 400]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "addon"))  # after PYTHONPATH: a node package given there wins

from heatcompute_node.engines.llm.native import ContextConfig  # noqa: E402
from heatcompute_node.engines.llm.runtime import Runtime  # noqa: E402
from heatcompute_node.engines.llm.sampling import Sampler, SamplingParams  # noqa: E402
from heatcompute_node.engines.llm.tokenizer import Tokenizer  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
PROMPTS = (
    "Write a long story about a warm house in winter, heated by a computer.",
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time",
    "Turn on the lights in the living room and set the heating to 21 degrees.",
    "List three reasons why",
    "Q: What is the boiling point of water?\nA:",
    "Dear neighbour,",
)
PARAMS = {
    "temperature 0.7 (default top_k/top_p/min_p)": SamplingParams(temperature=0.7, seed=1),
    "greedy (temperature 0)": SamplingParams(temperature=0),
    "temperature 1.0": SamplingParams(temperature=1.0, seed=1),
    "top_p 0.9": SamplingParams(temperature=0.7, top_p=0.9, seed=1),
    "top_k 40": SamplingParams(temperature=0.7, top_k=40, seed=1),
    "min_p 0.05": SamplingParams(temperature=0.7, min_p=0.05, seed=1),
    "top_k 40, top_p 0.9, min_p 0.05": SamplingParams(top_k=40, top_p=0.9, min_p=0.05, seed=1),
    "logit bias (1 token), temperature 0.7": SamplingParams(
        temperature=0.7, logit_bias={2: -100.0}, seed=1
    ),
}


def per_token_us(
    runtime: Runtime, rows: list[int], params: SamplingParams, *, fast: bool, tokens: int
) -> float:
    sampler = Sampler(runtime.model, params, fast_path=fast)
    try:
        context = runtime.context
        started = time.perf_counter()
        for i in range(tokens):
            sampler.sample(context, rows[i % len(rows)])
        return (time.perf_counter() - started) / tokens * 1e6
    finally:
        sampler.close()


def decode_step_ms(runtime: Runtime, lengths: list[int], steps: int) -> float:
    """Median time of a decode step with one new token for each of the sequences."""
    times = []
    batch = runtime.batch
    for step in range(steps):
        batch.clear()
        for seq, length in enumerate(lengths):
            batch.add(2, length + step, seq, logits=True)
        started = time.perf_counter()
        if runtime.context.decode(batch) != 0:
            raise RuntimeError("decode failed")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=400, help="tokens per measurement")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (decode)")
    args = parser.parse_args()

    tokenizer = Tokenizer(args.model)
    config = ContextConfig(n_ctx=1024, n_batch=256, n_seq_max=len(PROMPTS), n_threads=args.threads)
    runtime = Runtime.load(args.model, config)
    try:
        runtime.batch.clear()
        rows, lengths = [], []
        for seq, prompt in enumerate(PROMPTS):
            tokens = tokenizer.tokenize(prompt)
            rows.append(runtime.batch.add_span(tokens, 0, seq, logits_last=True))
            lengths.append(len(tokens))
        if runtime.context.decode(runtime.batch) != 0:
            raise RuntimeError("decode failed")

        best = {(name, fast): float("inf") for name in PARAMS for fast in (False, True)}
        for _ in range(args.rounds):
            for name, params in PARAMS.items():
                for fast in (False, True):
                    us = per_token_us(runtime, rows, params, fast=fast, tokens=args.tokens)
                    best[name, fast] = min(best[name, fast], us)
        step_ms = decode_step_ms(runtime, lengths, steps=10)
    finally:
        runtime.close()
        tokenizer.close()

    print(
        f"{args.model.name}, vocab {tokenizer.n_vocab}, {len(rows)} logits rows of one "
        f"decode step; µs per token, best of {args.rounds} rounds x {args.tokens} tokens"
    )
    width = max(map(len, PARAMS))
    print(f"{'':{width}}  {'chain':>8}  {'fast':>8}  chain/fast")
    for name in PARAMS:
        chain_us, fast_us = best[name, False], best[name, True]
        print(f"{name:{width}}  {chain_us:8.1f}  {fast_us:8.1f}  {chain_us / fast_us:9.1f}x")
    default = next(iter(PARAMS))
    n = len(rows)
    chain_ms, fast_ms = best[default, False] * n / 1e3, best[default, True] * n / 1e3
    print(
        f"\ndecode step, {n} sequences x 1 token ({args.threads} thread): {step_ms:.1f} ms; "
        f"sampling its {n} tokens at {default.split(' (')[0]}: "
        f"chain {chain_ms:.2f} ms ({chain_ms / (step_ms + chain_ms):.1%} of the step), "
        f"fast {fast_ms:.2f} ms ({fast_ms / (step_ms + fast_ms):.1%})"
    )


if __name__ == "__main__":
    main()
