"""A server of our own for the run: ``python -m service`` on free ports of 127.0.0.1.

It runs as a separate process (not on a thread of this one) so that its CPU and its GIL are
its own, as in production, and so that it can fail, or be killed, without taking the report
with it. Its log goes to ``server.log`` in the report folder.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.loadtest.processes import ChildGroup
from bench.loadtest.rpc import Connection, wait_serving
from modelrepo import ModelRepository

HOST = "127.0.0.1"
ATTEMPTS = 3
"""A free port can be taken between the check and the bind; start again on new ports."""


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def missing_models(models_dir: Path, names: Sequence[str]) -> list[str]:
    repository = ModelRepository(models_dir)
    return [name for name in names if repository.newest(name) is None]


@dataclass
class Server:
    process: ChildGroup
    target: str
    metrics_url: str


def start_server(
    models_dir: Path, models: Sequence[str], extra: Sequence[str], log: Path, timeout_s: float
) -> Server:
    """Start, and wait until health says SERVING (at most ``timeout_s`` per attempt)."""
    missing = missing_models(models_dir, models)
    if missing:
        raise ServerError(
            f"{models_dir}/ has no model {', '.join(missing)}: build the defaults with "
            "`make defaults`, or pick others with --models-dir and --model"
        )
    for attempt in range(1, ATTEMPTS + 1):
        port, metrics_port = free_port(), free_port()
        command = [
            sys.executable, "-m", "service",
            "--models-dir", str(models_dir),
            "--models", ",".join(dict.fromkeys(models)),
            "--host", HOST,
            "--port", str(port),
            "--metrics-port", str(metrics_port),
            *extra,
        ]  # fmt: skip
        server = Server(ChildGroup(command, log), f"{HOST}:{port}", metrics_url(metrics_port))
        problem = _wait(server, timeout_s)
        if problem is None:
            return server
        if attempt == ATTEMPTS or "in use" not in problem.lower():
            raise ServerError(problem)
    raise AssertionError("unreachable")


def metrics_url(port: int) -> str:
    return f"http://{HOST}:{port}/metrics"


def _wait(server: Server, timeout_s: float) -> str | None:
    """``None`` once SERVING; else why not, with the process stopped."""
    process = server.process
    if wait_serving(Connection(server.target), timeout_s, alive=lambda: process.poll() is None):
        return None
    running = process.poll() is None
    tail = process.tail()
    code = process.stop()
    if running:
        return f"the server was not SERVING after {timeout_s:.0f} s; its log ends with:\n{tail}"
    return f"the server exited with status {code}; its log ends with:\n{tail}"
