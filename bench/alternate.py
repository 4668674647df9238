"""Load process for A/B comparisons: closed-loop windows alternating between two servers.

    python -m bench.alternate --targets HOST:A HOST:B --model word2vec --texts texts.txt \\
        --clients 16 --seconds 1.5 --pairs 20

One process, one channel per server held open throughout, so windows are seconds apart and pay
no process start-up or connection set-up. After a warm-up of each server, it runs ``--pairs``
pairs of windows in ABBA order (A B, B A, A B, ...). Each window starts ``--clients`` clients
that each send one text per Embed call until ``--seconds`` are up, preceded by ``--gap`` seconds
of the same load untimed. It prints ``window start I`` (I: the target's index) when a window's
clients start and ``window end I`` once all of them are done, so every request of a window is
sent and answered between its two lines, and the caller can read its clocks there. Last, one
JSON line: per window, the target index, responses and errors; and per target, every call it
got (warm-up and gaps included). ``run_alternating`` starts it from the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc

from bench.load import text_source
from service.client import AsyncEmbeddingClient


class WindowClock:
    """The ``on_marker`` of ``run_alternating``: this process's CPU and wall seconds over each
    window, read the moment its start and end markers arrive (the servers run in this process,
    so its CPU over a window is theirs)."""

    def __init__(self) -> None:
        self._open: list[tuple[int, float, float]] = []
        self.windows: list[tuple[int, float, float]] = []
        """Per window in order: (target index, CPU seconds, wall seconds)."""

    def __call__(self, what: str, index: int) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        if what == "start":
            self._open.append((index, cpu, wall))
            return
        started, cpu_start, wall_start = self._open.pop()
        assert started == index, "window markers out of order"
        self.windows.append((index, cpu - cpu_start, wall - wall_start))


def abba(pairs: int) -> list[int]:
    """Target indices of ``pairs`` pairs of windows: 0 1, 1 0, 0 1, ..."""
    return [index for pair in range(pairs) for index in ((0, 1) if pair % 2 == 0 else (1, 0))]


async def closed_loop(
    client: AsyncEmbeddingClient, model: str, source: Iterator[str], clients: int, seconds: float
) -> tuple[int, Counter[str]]:
    """``clients`` callers, each sending its next text as soon as the last is answered."""
    responses = 0
    errors: Counter[str] = Counter()
    until = time.perf_counter() + seconds

    async def one_client() -> None:
        nonlocal responses
        while time.perf_counter() < until:
            try:
                await client.embed([next(source)], model)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            responses += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return responses, errors


async def alternate(
    targets: list[str],
    model: str,
    texts: list[str],
    clients: int,
    seconds: float,
    pairs: int,
    gap: float,
    warmup: float,
) -> dict[str, object]:
    source = text_source(texts, unique=False)
    windows: list[dict[str, object]] = []
    calls = [0] * len(targets)
    async with AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(AsyncEmbeddingClient(target, timeout=60, retries=0))
            for target in targets
        ]

        async def load(index: int, seconds: float) -> tuple[int, Counter[str]]:
            responses, errors = await closed_loop(channels[index], model, source, clients, seconds)
            calls[index] += responses + errors.total()
            return responses, errors

        # Last warmed is first measured: like every later window, it follows its own server's.
        for index in reversed(range(len(targets))):
            await load(index, warmup)
        for index in abba(pairs):
            await load(index, gap)
            print(f"window start {index}", flush=True)
            responses, errors = await load(index, seconds)
            print(f"window end {index}", flush=True)
            windows.append({"target": index, "responses": responses, "errors": dict(errors)})
    return {"clients": clients, "seconds": seconds, "windows": windows, "calls": calls}


def run_alternating(
    targets: tuple[str, str],
    model: str,
    texts: Path,
    clients: int,
    seconds: float,
    pairs: int,
    gap: float,
    on_marker: Callable[[str, int], None],
) -> dict[str, Any]:
    """This module in its own process; ``on_marker("start" | "end", target index)`` is called
    the moment each marker line arrives (the caller reads its clocks there). Its JSON result."""
    command = [
        sys.executable,
        "-m",
        "bench.alternate",
        "--targets",
        *targets,
        "--model",
        model,
        "--texts",
        str(texts),
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--pairs",
        str(pairs),
        "--gap",
        str(gap),
    ]
    lines = []
    # stderr goes to a file: a pipe nobody reads while stdout is followed could fill and block.
    with (
        tempfile.TemporaryFile("w+") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("window "):
                _, what, index = line.split()
                on_marker(what, int(index))
            else:
                lines.append(line)
        if process.wait():
            stderr.seek(0)
            raise subprocess.CalledProcessError(
                process.returncode, command, "".join(lines), stderr.read()
            )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alternate")
    parser.add_argument("--targets", nargs=2, required=True, metavar="HOST:PORT")
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="one text per line")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per window")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.2, help="untimed load before each window")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed load per server first")
    args = parser.parse_args(argv)
    texts = [line for line in args.texts.read_text().splitlines() if line]
    result = asyncio.run(
        alternate(
            args.targets,
            args.model,
            texts,
            args.clients,
            args.seconds,
            args.pairs,
            args.gap,
            args.warmup,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
