"""The stream section: one EmbedStream with N messages outstanding against N unary clients.

A stream's messages are worked on concurrently (``stream_concurrency``), so one stream with N
messages in flight should batch like N clients with one call each, and cost the server less
(no call set-up per message). The goal: the stream's throughput at least ``GOAL`` of the
clients', both against the same server in one run, one text per message, cache off.

The load runs in a process of its own, as ``bench.load`` does:

    python -m bench.stream --target 127.0.0.1:50051 --model bert --texts texts.txt \\
        --outstanding 64 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from bench.load import latency_summary, run_load
from bench.servers import Engine, bench_settings
from proto.embedding.v1 import embedding_pb2 as pb
from service.background import background_server
from service.client import AsyncEmbeddingClient, embed_request

console = Console(width=150)

GOAL = 0.9
"""One stream's throughput over that of as many unary clients as it keeps messages in flight."""


async def drive_stream(
    target: str, model: str, texts: list[str], outstanding: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """One EmbedStream that keeps ``outstanding`` messages unanswered (one text each), for
    ``warmup`` + ``seconds``; counts the messages sent in the measured window."""
    source = itertools.cycle(texts)
    slots = asyncio.Semaphore(outstanding)
    sent_at: deque[float] = deque()
    measuring_from = time.perf_counter() + warmup
    until = measuring_from + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def requests() -> AsyncIterator[pb.EmbedRequest]:
        while time.perf_counter() < until:
            await slots.acquire()
            sent_at.append(time.perf_counter())
            yield embed_request([next(source)], model)

    async with AsyncEmbeddingClient(target, timeout=warmup + seconds + 60, retries=0) as client:
        try:
            async for _ in client.embed_stream(requests()):
                done = time.perf_counter()
                started = sent_at.popleft()  # replies come in the order sent
                slots.release()
                if started >= measuring_from:
                    latencies.append(done - started)
        except grpc.aio.AioRpcError as error:
            errors[error.code().name] += 1
    return {"outstanding": outstanding, **latency_summary(latencies, seconds, errors)}


def run_stream_load(
    target: str, model: str, texts: Path, outstanding: int, seconds: float
) -> dict[str, Any]:
    """``drive_stream`` in its own process (its CPU is not the server's); its JSON result."""
    command = [
        sys.executable, "-m", "bench.stream",
        "--target", target,
        "--model", model,
        "--texts", str(texts),
        "--outstanding", str(outstanding),
        "--seconds", str(seconds),
    ]  # fmt: skip
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


@dataclass
class BatchSizes:
    """Batch observer: the size of every batch, read out per run."""

    sizes: list[int] = field(default_factory=list)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.sizes.append(batch_size)

    def on_dropped(self, reason: str, count: int) -> None:
        pass

    def on_executed(self, seconds: float) -> None:
        pass

    def take_mean(self) -> float:
        """The mean batch size since the last call."""
        sizes, self.sizes = self.sizes, []
        return sum(sizes) / max(1, len(sizes))


def bench_stream(
    models_dir: Path, model: str, texts: Path, outstanding: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    settings = bench_settings(models_dir, model, engine, stream_concurrency=max(outstanding, 1))
    recorder = BatchSizes()
    with background_server(
        settings, lambda name: recorder if name.endswith(" embed") else None
    ) as server:
        console.print(f"[bold]{model}[/bold]: {outstanding} unary clients, {seconds:.0f} s")
        unary = run_load(server.target, model, texts, outstanding, seconds)
        unary["mean_batch"] = recorder.take_mean()
        console.print(
            f"[bold]{model}[/bold]: one stream, {outstanding} outstanding, {seconds:.0f} s"
        )
        stream = run_stream_load(server.target, model, texts, outstanding, seconds)
        stream["mean_batch"] = recorder.take_mean()
    ratio = stream["throughput"] / max(1e-9, unary["throughput"])
    return {
        "model": model,
        "unary": unary,
        "stream": stream,
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL,
    }


def report_stream(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['model']}: one stream vs unary clients (texts/s, cache off)")
    for column in ("load", "texts/s", "p50 ms", "p99 ms", "mean batch", "errors"):
        table.add_column(column)
    outstanding = result["stream"]["outstanding"]
    for name, run in (
        (f"{outstanding} unary clients", result["unary"]),
        (f"one stream, {outstanding} outstanding", result["stream"]),
    ):
        table.add_row(
            name,
            f"{run['throughput']:.0f}",
            "-" if run["p50_ms"] is None else f"{run['p50_ms']:.1f}",
            "-" if run["p99_ms"] is None else f"{run['p99_ms']:.1f}",
            f"{run['mean_batch']:.1f}",
            str(run["errors"] or "-"),
        )
    console.print(table)
    verdict = "[green]met[/green]" if result["met"] else "[red]not met[/red]"
    console.print(
        f"stream / unary throughput: {result['ratio']:.2f} (goal >= {result['goal']}: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream")
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="one text per line")
    parser.add_argument("--outstanding", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args(argv)
    texts = args.texts.read_text().splitlines()
    result = asyncio.run(
        drive_stream(args.target, args.model, texts, args.outstanding, args.seconds, args.warmup)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
