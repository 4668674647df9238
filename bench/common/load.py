"""Start the load driver (``bench.common.driver``) from a section: in a process of its own, so
its CPU is not the served process's. Each returns the driver's JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

WARMUP_S = 2.0
"""Untimed load before a measured window."""
ALTERNATE_WARMUP_S = 1.0
"""Untimed load per server before the first of alternating windows."""


def run_load(
    target: str,
    model: str,
    texts: Path,
    clients: int,
    seconds: float,
    unique: bool = False,
    stream: bool = False,
    http: str | None = None,
) -> dict[str, Any]:
    """``clients`` unary callers (or, with ``stream``, one EmbedStream with as many messages in
    flight), one text per call, for a warm-up then ``seconds``; ``unique``: every text new;
    ``http`` (``float`` or ``base64``): the HTTP API at ``target`` instead."""
    return _driver(
        "load", "--target", target,
        *_load_arguments(model, texts, clients, seconds, WARMUP_S),
        *(["--unique"] if unique else []),
        *(["--stream"] if stream else []),
        *(["--http", http] if http else []),
    )  # fmt: skip


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
    """``pairs`` pairs of windows alternating between two servers (ABBA order);
    ``on_marker("start" | "end", target index)`` is called the moment each window's marker
    arrives (the caller reads its clocks there)."""
    return _driver(
        "alternate", "--targets", *targets,
        *_load_arguments(model, texts, clients, seconds, ALTERNATE_WARMUP_S),
        "--pairs", str(pairs),
        "--gap", str(gap),
        on_marker=on_marker,
    )  # fmt: skip


def _load_arguments(
    model: str, texts: Path, clients: int, seconds: float, warmup: float
) -> list[str]:
    return [
        "--model", model,
        "--texts", str(texts),
        "--clients", str(clients),
        "--seconds", str(seconds),
        "--warmup", str(warmup),
    ]  # fmt: skip


def _driver(*arguments: str, on_marker: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """The driver to its end: marker lines to ``on_marker`` as they come, then its last line."""
    command = [sys.executable, "-m", "bench.common.driver", *arguments]
    lines = []
    # stderr goes to a file: a pipe nobody reads while stdout is followed could fill and block.
    with (
        tempfile.TemporaryFile("w+") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            if on_marker is not None and line.startswith("window "):
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
