"""The document index: indexing throughput batched against one passage at a time, and
search latency at 100,000 passages, in one run.

Throughput: a folder of household notes (``--files`` text files of a few paragraphs,
written by the bench) is indexed from scratch by

  (a) the index as the node runs it: passages of several files share embedding calls
      (32 per call; the engine packs them into llama.cpp batches),
  (b) the same index embedding one passage per call,

both on the real all-MiniLM-L6-v2 (llama.cpp, 2 threads), in interleaved rounds (a, b,
b, a, ...; best of ``--rounds``) so that a busy neighbour slows both alike. Reported:
passages/s and the ratio (a)/(b).

Search: a store of ``--chunks`` passages (100,000; their vectors are random unit vectors,
since the cost of a search does not depend on what the vectors mean, and embedding
100,000 real passages would take hours on two cores), searched with real questions
embedded by the real model. Reported: the first search (it loads the vector matrix),
then p50/p95 of whole searches (embed the question + dot products + top-k + reading the
passages from SQLite) and of their vector part alone.

    .venv/bin/python bench/index_throughput.py [--files 20] [--rounds 2] [--chunks 100000]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import random
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

from heatcompute_node.engines.llm.models import EngineSettings, ModelManager  # noqa: E402
from heatcompute_node.index.chunk import Chunk  # noqa: E402
from heatcompute_node.index.document_index import DocumentIndex  # noqa: E402
from heatcompute_node.index.embed import LlmEmbedder  # noqa: E402
from heatcompute_node.index.store import IndexStore  # noqa: E402

MINILM = ROOT / "models" / "all-MiniLM-L6-v2.gguf"
TOPICS = (
    "the boiler was serviced and the pressure set to 1.5 bar",
    "the insurance covers water damage with a deductible of 500 euros",
    "the winter tyres are stored at the garage in town",
    "the school trip costs 45 euros and leaves on Monday at eight",
    "the heat pump's filter is cleaned every three months",
    "the tax office needs the receipts for the new windows",
    "the dishwasher shows error E24 when the drain is blocked",
    "the roof was inspected after the storm and two tiles replaced",
)
QUESTIONS = (
    "when does the furnace warranty end",
    "how much do I pay myself after a burst pipe",
    "where are the snow tyres",
    "what does the dishwasher error mean",
    "which documents does the tax office want",
    "how often is the heat pump filter cleaned",
    "what happened to the roof after the storm",
    "when does the school excursion start",
)


def write_notes(folder: Path, files: int) -> None:
    rng = random.Random(20261130)
    folder.mkdir(parents=True)
    for n in range(files):
        paragraphs = []
        for p in range(4):
            sentences = [
                f"On day {n * 4 + p} {rng.choice(TOPICS)}." for _ in range(rng.randint(3, 6))
            ]
            paragraphs.append(" ".join(sentences))
        (folder / f"note-{n:04d}.txt").write_text("\n\n".join(paragraphs) + "\n")


async def index_all(index: DocumentIndex) -> tuple[int, float]:
    """Index the folder from scratch; (passages, seconds)."""
    await index.start()
    try:
        started = time.perf_counter()
        progress = await index.index_some(1_000_000)
        seconds = time.perf_counter() - started
        assert progress.backlog.empty, progress
        assert progress.files_failed == 0, progress
        return progress.chunks_embedded, seconds
    finally:
        await index.close()


async def throughput(embedder: LlmEmbedder, folder: Path, work: Path, rounds: int) -> None:
    best = {"batched": 0.0, "one at a time": 0.0}
    chunks = 0
    await embedder.embed(["warm-up: load the model"])
    for round_ in range(rounds):
        order = list(best) if round_ % 2 == 0 else list(reversed(best))
        for name in order:
            database = work / f"{name}-{round_}.sqlite3"
            index = DocumentIndex(
                [folder], database, embedder, batch_size=32 if name == "batched" else 1
            )
            chunks, seconds = await index_all(index)
            rate = chunks / seconds
            best[name] = max(best[name], rate)
            print(
                f"  round {round_ + 1} {name:>14}: {chunks} passages in {seconds:.1f} s "
                f"= {rate:.1f}/s",
                flush=True,
            )
    ratio = best["batched"] / best["one at a time"]
    print(
        f"throughput ({chunks} passages, best of {rounds}): (a) batched "
        f"{best['batched']:.1f}/s, (b) one at a time {best['one at a time']:.1f}/s, "
        f"(a)/(b) x{ratio:.2f}"
    )


def fill_store(database: Path, chunks: int, dimensions: int) -> None:
    """`chunks` passages in files of 100, random unit vectors, as the index writes them."""
    store = IndexStore(database)
    store.set_meta("model", "all-MiniLM-L6-v2")
    store.set_meta("dimensions", str(dimensions))
    rng = np.random.default_rng(7)
    per_file = 100
    for n in range(chunks // per_file):
        vectors = rng.standard_normal((per_file, dimensions)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        passages = [
            Chunk(f"Passage {n}-{i}: {TOPICS[(n + i) % len(TOPICS)]}.", None, i + 1)
            for i in range(per_file)
        ]
        store.replace(
            f"/bench/file-{n:05d}.txt",
            size=1000,
            mtime_ns=0,
            sha256=f"{n:064x}",
            chunks=passages,
            vectors=vectors,
            now=time.time(),
        )
    store.close()


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return (
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
    )


async def search_latency(embedder: LlmEmbedder, work: Path, chunks: int, searches: int) -> None:
    database = work / "large.sqlite3"
    started = time.perf_counter()
    await asyncio.to_thread(fill_store, database, chunks, 384)
    print(f"search: store of {chunks} passages written in {time.perf_counter() - started:.0f} s")
    empty = work / "empty"
    empty.mkdir()
    index = DocumentIndex([empty], database, embedder)
    await index.start()
    try:
        started = time.perf_counter()
        await index.search(QUESTIONS[0], 5)
        first = time.perf_counter() - started
        whole, vector_part = [], []
        for n in range(searches):
            question = QUESTIONS[n % len(QUESTIONS)]
            started = time.perf_counter()
            found = await index.search(question, 5)
            whole.append(time.perf_counter() - started)
            assert len(found) == 5
            [query] = await embedder.embed([question])
            matrix = await index._loaded_matrix(384)
            started = time.perf_counter()
            hits = await asyncio.to_thread(matrix.top, query, 5)
            await asyncio.to_thread(index.store.passages, [i for i, _ in hits])
            vector_part.append(time.perf_counter() - started)
        w50, w95 = quantiles(whole)
        v50, v95 = quantiles(vector_part)
        print(
            f"search at {len(matrix)} passages: first {first * 1000:.0f} ms (loads the "
            f"matrix); {searches} searches p50 {w50:.1f} ms, p95 {w95:.1f} ms; vector part "
            f"p50 {v50:.1f} ms, p95 {v95:.1f} ms"
        )
    finally:
        await index.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    manager = ModelManager(None, [MINILM], EngineSettings(n_threads=args.threads))
    await manager.start()
    embedder = LlmEmbedder(manager)
    work = Path(tempfile.mkdtemp(prefix="index-bench-"))
    try:
        write_notes(work / "notes", args.files)
        await throughput(embedder, work / "notes", work, args.rounds)
        await search_latency(embedder, work, args.chunks, args.searches)
    finally:
        await manager.close()
        shutil.rmtree(work)


if __name__ == "__main__":
    asyncio.run(main())
