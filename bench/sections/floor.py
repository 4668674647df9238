"""The floor section: server CPU per request against the transport's own floor.

A bare ``grpc.aio`` servicer answers every Embed with one constant ``EmbedResponse``: the reply
the served word2vec gives to a held-out sentence, captured first, so the floor serialises a
message of the same size. It runs as the served models do, on a background thread of this
process, driven by the same load driver (N clients, one text per call), so this process's CPU
time over a run is the server's. Then word2vec, the default BERT and a 4 × 256 BERT are served
the same way, cache off, and for the BERTs the engine's own CPU per text is measured apart (raw
ONNX Runtime on the batch shapes the server formed). What is left, server CPU minus engine
minus floor, is what the service itself adds to every request.

Run after run, one-off figures here move by ±25 %, more than the goal itself, so word2vec
(nothing but ours on top of the transport) is also measured against the floor in alternating
windows, both servers up at once (blocks of four: word2vec, floor, floor, word2vec; see
``bench.common.paired``): per block, the mean of its word2vec windows minus the mean of its
floor windows, server CPU per request; the median over blocks, with its sign-test interval, is
the figure the goal is judged on.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from bench.common.batches import BatchRecorder
from bench.common.load import run_alternating, run_load
from bench.common.paired import GAP_S, WindowClock, block_differences, median_interval
from bench.common.raw import newest_encoder, replay_measured
from bench.common.report import console, make_table
from bench.common.servers import Engine, bench_settings
from bench.common.texts import read_texts
from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.background import background_server
from service.client import EmbeddingClient

OURS_GOAL_US = 100.0
"""Server CPU per request, minus the engine's and the floor's, at most this."""


class ConstantServicer(pb_grpc.EmbeddingServiceServicer):  # type: ignore[misc]
    """Answers every Embed with the same response, built once."""

    def __init__(self, response: pb.EmbedResponse) -> None:
        self.response = response

    async def Embed(
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedResponse:
        return self.response


class FloorServer:
    """The bare servicer on a private event loop in this process, like ``BackgroundServer``."""

    def __init__(self, response: pb.EmbedResponse) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = asyncio.run_coroutine_threadsafe(
            self._start(response), self.loop
        ).result(30)

    @staticmethod
    async def _start(response: pb.EmbedResponse) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        pb_grpc.add_EmbeddingServiceServicer_to_server(ConstantServicer(response), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def measured_load(
    target: str, model: str, texts: Path, clients: int, seconds: float
) -> dict[str, Any]:
    """``run_load`` with this process's CPU over it, per response (warm-up included)."""
    started = time.process_time()
    load = run_load(target, model, texts, clients, seconds)
    cpu_s = time.process_time() - started
    load["cpu_us_per_request"] = cpu_s / max(1, load["responses"]) * 1e6
    return load


PAIRED_CLIENTS = 16
"""Clients of the alternating windows: word2vec has no batcher, so 16 saturate it as 64 do,
with less contention between load and server on 2 cores."""


def paired_ours(
    served: str,
    floor: str,
    model: str,
    texts: Path,
    blocks: int,
    window_s: float,
) -> dict[str, Any]:
    """Server CPU per request of ``served`` minus the floor's, from ``blocks`` blocks of four
    alternating windows (served floor floor served), so drift cancels within each block."""
    clock = WindowClock()
    load = run_alternating(
        (served, floor), model, texts, PAIRED_CLIENTS, window_s, 2 * blocks, GAP_S, clock
    )
    per_request = [
        cpu_s / max(1, int(window["responses"])) * 1e6
        for (_, cpu_s, _), window in zip(clock.windows, load["windows"], strict=True)
    ]
    by_block = block_differences([index for index, _, _ in clock.windows], per_request)
    low, high, coverage = median_interval(by_block)
    errors = sum(sum(window["errors"].values()) for window in load["windows"])
    return {
        "blocks": len(by_block),
        "window_s": window_s,
        "clients": PAIRED_CLIENTS,
        "ours_us_by_block": by_block,
        "ours_us": statistics.median(by_block),
        "ours_interval_us": [low, high],
        "interval_coverage": coverage,
        "goal_met": statistics.median(by_block) <= OURS_GOAL_US,
        "errors": errors,
    }


def bench_floor(
    locations: dict[str, Path],
    word2vec: str,
    berts: list[str],
    texts: Path,
    clients: int,
    seconds: float,
    engine: Engine,
    blocks: int = 6,
) -> dict[str, Any]:
    """The floor, word2vec and each BERT, one after another in this run; then word2vec against
    the floor in ``blocks`` blocks of alternating windows."""
    sentence = read_texts(texts)[0]
    rows: list[dict[str, Any]] = []
    with background_server(bench_settings(locations[word2vec], word2vec, engine)) as served:
        with EmbeddingClient(served.target) as client:
            constant = client.embed([sentence], model=word2vec)
        console.print(f"floor: bare grpc.aio, constant reply of {constant.ByteSize()} bytes")
        floor = FloorServer(constant)
        try:
            rows.append(
                {
                    "name": "transport floor",
                    **measured_load(floor.target, word2vec, texts, clients, seconds),
                }
            )
            console.print(f"floor: {word2vec} served")
            rows.append(
                {
                    "name": word2vec,
                    **measured_load(served.target, word2vec, texts, clients, seconds),
                }
            )
            console.print(f"floor: {word2vec} against the floor, {blocks} blocks of windows")
            paired = paired_ours(served.target, floor.target, word2vec, texts, blocks, seconds / 4)
        finally:
            floor.close()
    for name in berts:
        console.print(f"floor: {name} served, then raw at its shapes")
        recorder = BatchRecorder()
        settings = bench_settings(locations[name], name, engine)
        with background_server(settings, recorder.for_embed) as served:
            load = measured_load(served.target, name, texts, clients, seconds)
        session, spec = newest_encoder(locations[name], name, engine)
        raw = replay_measured(session, spec, recorder.shapes, seconds)
        load["engine_us_per_text"] = raw.cpu_s / max(1, raw.texts) * 1e6
        rows.append({"name": name, **load})
    floor_us = rows[0]["cpu_us_per_request"]
    for row in rows[1:]:
        row["ours_us"] = row["cpu_us_per_request"] - row.get("engine_us_per_text", 0.0) - floor_us
        row["goal_met"] = row["ours_us"] <= OURS_GOAL_US
    return {"rows": rows, "floor_us": floor_us, "paired": paired, "valid": True}


def report_floor(result: dict[str, Any]) -> None:
    table = make_table(
        "server CPU per request (one text per call) against the bare transport's floor",
        (
            "server",
            "requests/s",
            "server CPU µs/request",
            "engine µs/text",
            f"ours µs (goal ≤ {OURS_GOAL_US:.0f})",
            "p50 ms",
            "errors",
        ),
    )
    for row in result["rows"]:
        ours = row.get("ours_us")
        table.add_row(
            row["name"],
            f"{row['throughput']:.0f}",
            f"{row['cpu_us_per_request']:.0f}",
            f"{row['engine_us_per_text']:.0f}" if "engine_us_per_text" in row else "-",
            "-" if ours is None else f"{ours:+.0f} ({'met' if row['goal_met'] else 'missed'})",
            f"{row['p50_ms']:.2f}",
            str(row["errors"] or "-"),
        )
    console.print(table)
    paired = result["paired"]
    low, high = paired["ours_interval_us"]
    console.print(
        f"word2vec against the floor, {paired['blocks']} blocks of alternating windows "
        f"({paired['clients']} clients, {paired['window_s']:g} s each): ours "
        f"{paired['ours_us']:+.0f} µs per request (median; {paired['interval_coverage']:.0%} "
        f"interval {low:+.0f} to {high:+.0f}), goal ≤ {OURS_GOAL_US:.0f}: "
        f"{'met' if paired['goal_met'] else 'missed'}"
        + (f"; {paired['errors']} errors" if paired["errors"] else "")
    )
