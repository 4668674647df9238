"""A real Prometheus server for the tests: Debian's ``prometheus`` binary on a free port.

It runs the project's own scrape config (``deploy/prometheus/prometheus.yml``) and rule files,
with the scrape target pointed at a server the test started and intervals shortened to 1 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml

from tests.redis_servers import free_port, log_tail

ROOT = Path(__file__).resolve().parents[1]
PROJECT_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
JOB = "embedding-service"
INSTALL_HINT = (
    "`apt-get install -y --no-install-recommends prometheus` (Debian), or `make test`, "
    "which installs it"
)


def prometheus_binary(name: str = "prometheus") -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with {INSTALL_HINT}")
    return found


def config_for(metrics_target: str, interval: str = "1s") -> dict[str, Any]:
    """The project's config with its job scraping ``metrics_target`` and rules given by path."""
    config: dict[str, Any] = yaml.safe_load(PROJECT_CONFIG.read_text())
    config.setdefault("global", {}).update(
        {"scrape_interval": interval, "evaluation_interval": interval}
    )
    base = PROJECT_CONFIG.parent
    config["rule_files"] = [str(base / pattern) for pattern in config.get("rule_files", [])]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    job["static_configs"] = [{"targets": [metrics_target]}]
    job["scrape_interval"] = interval
    config["scrape_configs"] = [job]
    config.pop("alerting", None)
    return config


class PrometheusServer:
    """``prometheus`` scraping ``metrics_target`` every second, with the project's rules."""

    def __init__(self, directory: Path, metrics_target: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.config_path = directory / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config_for(metrics_target)))
        self.log_path = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready in {timeout} s:\n{log_tail(self.log_path)}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s data; raises with Prometheus's own message on an error."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: {error.read().decode()}") from error
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of ``expression`` now."""
        data = self.api("query", query=expression)
        assert data["resultType"] == "vector", (expression, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, expression: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """``expression``'s result once it is not empty (rules need a few evaluations)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)
