"""Load generator, run as its own process: N concurrent clients sending one text per Embed call.

    python -m bench.load --target 127.0.0.1:50051 --model bert --clients 64 --seconds 10 \\
        --texts texts.txt

Prints one JSON object: texts served per second, latency percentiles, error counts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from service.client import AsyncEmbeddingClient


async def drive(
    target: str, model: str, texts: list[str], clients: int, seconds: float, warmup: float
) -> dict[str, object]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    source = itertools.cycle(texts)
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    async with AsyncEmbeddingClient(target, timeout=60, retries=0) as client:

        async def one_client() -> None:
            while (now := time.perf_counter()) < until:
                try:
                    await client.embed([next(source)], model)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                    continue
                if now >= measuring_from:
                    latencies.append(time.perf_counter() - now)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    values = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "seconds": seconds,
        "texts": len(latencies),
        "throughput": len(latencies) / seconds,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
        "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
        "errors": dict(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="one text per line")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args(argv)
    texts = args.texts.read_text().splitlines()
    result = asyncio.run(
        drive(args.target, args.model, texts, args.clients, args.seconds, args.warmup)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
