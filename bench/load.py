"""Load generator, run as its own process: N concurrent clients sending one text per Embed call.

    python -m bench.load --target 127.0.0.1:50051 --model bert --clients 64 --seconds 10 \\
        --texts texts.txt [--unique]

Prints one JSON object: texts served per second, latency percentiles, error counts, and how many
responses (warm-up included) had an embedding that was not ``cached`` (0 when every text was a
cache hit). ``run_load`` starts it from the benchmark.
``--unique`` makes every text one no cache has seen (the cache's miss path).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from service.client import AsyncEmbeddingClient


def unique_text(text: str, number: int) -> str:
    """``text`` with a case number before its final stop: still a plausible sentence, a few
    tokens longer, and no two texts of a run (hence no two cache keys) are the same."""
    body = text.rstrip()
    end = ""
    if body.endswith((".", "!", "?")):
        body, end = body[:-1].rstrip(), " " + body[-1]
    return f"{body} , case {number}{end}"


def text_source(texts: list[str], unique: bool) -> Iterator[str]:
    """The texts in a cycle; with ``unique``, each with its own counter."""
    if not unique:
        return itertools.cycle(texts)
    return (
        unique_text(text, number) for number, text in zip(itertools.count(), itertools.cycle(texts))
    )


def latency_summary(latencies: list[float], seconds: float, errors: Counter[str]) -> dict[str, Any]:
    """What every load reports of its measured window: texts answered, their rate, p50 and p99
    latency in ms (None when nothing answered) and errors by status."""
    values = np.asarray(latencies) * 1000
    return {
        "seconds": seconds,
        "texts": len(latencies),
        "throughput": len(latencies) / seconds,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
        "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
        "errors": dict(errors),
    }


async def drive(
    target: str,
    model: str,
    texts: list[str],
    clients: int,
    seconds: float,
    warmup: float,
    unique: bool = False,
) -> dict[str, object]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    responses = uncached = 0
    source = text_source(texts, unique)
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    async with AsyncEmbeddingClient(target, timeout=60, retries=0) as client:

        async def one_client() -> None:
            nonlocal responses, uncached
            while (now := time.perf_counter()) < until:
                try:
                    response = await client.embed([next(source)], model)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                    continue
                done = time.perf_counter()
                responses += 1
                uncached += not all(embedding.cached for embedding in response.embeddings)
                if now >= measuring_from:
                    latencies.append(done - now)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return {
        "clients": clients,
        **latency_summary(latencies, seconds, errors),
        "responses": responses,
        "uncached": uncached,
    }


def run_load(
    target: str, model: str, texts: Path, clients: int, seconds: float, unique: bool = False
) -> dict[str, Any]:
    """This module in its own process (its CPU use is not the server's GIL); its JSON result."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        "--target",
        target,
        "--model",
        model,
        "--texts",
        str(texts),
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        *(["--unique"] if unique else []),
    ]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="one text per line")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--unique",
        action="store_true",
        help="add a distinct counter to every text, so each one misses any cache",
    )
    args = parser.parse_args(argv)
    texts = args.texts.read_text().splitlines()
    result = asyncio.run(
        drive(args.target, args.model, texts, args.clients, args.seconds, args.warmup, args.unique)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
