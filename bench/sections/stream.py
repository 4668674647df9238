"""The stream section: one EmbedStream with N messages outstanding against N unary clients.

A stream's messages are worked on concurrently (``stream_concurrency``), so one stream with N
messages in flight should batch like N clients with one call each, and cost the server less
(no call set-up per message). The goal: the stream's throughput at least ``GOAL`` of the
clients', both against the same server in one run, one text per message, cache off. Both
loads come from the one load driver (``run_load``, and ``stream=True`` for the stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common.batches import BatchRecorder
from bench.common.load import run_load
from bench.common.report import console, make_table, ms, verdict
from bench.common.servers import Engine, bench_settings
from service.background import background_server

GOAL = 0.9
"""One stream's throughput over that of as many unary clients as it keeps messages in flight."""


def bench_stream(
    models_dir: Path, model: str, texts: Path, outstanding: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    settings = bench_settings(models_dir, model, engine, stream_concurrency=max(outstanding, 1))
    recorder = BatchRecorder()
    with background_server(settings, recorder.for_embed) as server:
        console.print(f"[bold]{model}[/bold]: {outstanding} unary clients, {seconds:.0f} s")
        unary = run_load(server.target, model, texts, outstanding, seconds)
        unary["mean_batch"] = recorder.take().mean_batch
        console.print(
            f"[bold]{model}[/bold]: one stream, {outstanding} outstanding, {seconds:.0f} s"
        )
        stream = run_load(server.target, model, texts, outstanding, seconds, stream=True)
        stream["mean_batch"] = recorder.take().mean_batch
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
    table = make_table(
        f"{result['model']}: one stream vs unary clients (texts/s, cache off)",
        ("load", "texts/s", "p50 ms", "p99 ms", "mean batch", "errors"),
    )
    outstanding = result["stream"]["outstanding"]
    for name, run in (
        (f"{outstanding} unary clients", result["unary"]),
        (f"one stream, {outstanding} outstanding", result["stream"]),
    ):
        table.add_row(
            name,
            f"{run['throughput']:.0f}",
            ms(run["p50_ms"]),
            ms(run["p99_ms"]),
            f"{run['mean_batch']:.1f}",
            str(run["errors"] or "-"),
        )
    console.print(table)
    console.print(
        f"stream / unary throughput: {result['ratio']:.2f} "
        f"(goal >= {result['goal']}: {verdict(result['met'])})"
    )
