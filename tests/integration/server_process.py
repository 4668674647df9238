"""``python -m service`` in a process of its own, as a replica runs in production.

It binds gRPC and metrics on free ports (``--port 0 --metrics-port 0``) and the ports it got
are read from its log; ``scrape()`` reads its own ``/metrics``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

from tests.redis_servers import log_tail

READY = re.compile(r"serving .+ on 127\.0\.0\.1:(\d+)$", re.M)
METRICS = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics$", re.M)


class ServerProcess:
    """One server process; ``start()`` returns once it reports SERVING."""

    def __init__(
        self,
        python: str | Path,
        models_dir: Path,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = [
            str(python), "-m", "service",
            "--models-dir", str(models_dir),
            "--host", "127.0.0.1",
            "--port", "0",
            "--metrics-port", "0",
            "--batching-cost-model", "off",  # no warm-up grid: test servers start at once
            *args,
        ]  # fmt: skip
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> Self:
        """Start the process without waiting (start several, then ``wait_ready`` each)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        return self

    def wait_ready(self, timeout: float = 120.0) -> Self:
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log_path.read_text(errors="replace")
            ready, metrics = READY.search(log), METRICS.search(log)
            if ready and metrics:
                self.port, self.metrics_port = int(ready.group(1)), int(metrics.group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited:\n{log_tail(self.log_path)}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"not serving after {timeout} s:\n{log_tail(self.log_path)}")

    def start(self, timeout: float = 120.0) -> Self:
        return self.spawn().wait_ready(timeout)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """This server's own ``/metrics``: (sample name, labels) → value."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.scrape().items() if n == name and wanted <= have)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it is not gone in 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
