"""A port that another process holds fails the start with one line: the address, the setting
that chose the port, and how to choose another; for every port the server opens.

Each case occupies a real port with a listening socket, then starts ``python -m service`` on
it (model control by polling an empty repository: no model is needed to bind).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from service.errors import ENV_PREFIX
from tests.loadtest_files import REPO

ADVICE = {
    "--port": "choose another port with --port or EMBED_PORT (0 picks a free one)",
    "--metrics-port": "choose another port with --metrics-port or EMBED_METRICS_PORT (0 picks a "
    "free one), or turn metrics off with --no-metrics",
    "--health-port": "choose another port with --health-port or EMBED_HEALTH_PORT (0 turns the "
    "health port off)",
    "--http-port": "choose another port with --http-port or EMBED_HTTP_PORT (0 picks a free one)",
}
ENV_NAME = {flag: "EMBED_" + flag[2:].upper().replace("-", "_") for flag in ADVICE}
WHAT = {
    "--port": "gRPC API",
    "--metrics-port": "metrics endpoint",
    "--health-port": "health port",
    "--http-port": "HTTP API",
}


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port of 127.0.0.1 that a listening socket of this process holds."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def start(tmp_path: Path, flag: str, port: int, env: dict[str, str] | None = None) -> str:
    """``python -m service`` with every other port free; its stderr once it has exited."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("EMBED_")}
    ports = {"--port": "0", "--metrics-port": "0"} | ({flag: str(port)} if flag else {})
    ports = {name: value for name, value in ports.items() if ENV_NAME[name] not in (env or {})}
    args = [
        sys.executable, "-m", "service", "--models-dir", str(tmp_path), "--host", "127.0.0.1",
        "--model-control", "poll", *(part for pair in ports.items() for part in pair),
    ]  # fmt: skip
    done = subprocess.run(
        args,
        cwd=REPO,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    return done.stderr


def the_error(stderr: str, port: int) -> str:
    """The one line that names the port (no other line does: no bare ``[Errno 98]``, no gRPC
    core log), with the logger's prefix cut off."""
    lines = [line for line in stderr.splitlines() if str(port) in line or "Errno" in line]
    assert len(lines) == 1, stderr
    assert " ERROR service " in lines[0], stderr
    return lines[0].split("]: ", 1)[1]


@pytest.mark.parametrize("flag", list(ADVICE))
def test_a_port_in_use_fails_the_start_naming_the_address_and_the_setting(
    flag: str, occupied: int, tmp_path: Path
) -> None:
    error = the_error(start(tmp_path, flag, occupied), occupied)
    assert error == (
        f"could not bind the {WHAT[flag]} ({flag}) to 127.0.0.1:{occupied} "
        f"(Address already in use); {ADVICE[flag]}"
    )


def test_the_default_metrics_port_set_from_the_environment_is_named_too(
    occupied: int, tmp_path: Path
) -> None:
    """The case that was reported: a second server on the metrics port it never chose."""
    stderr = start(tmp_path, "", occupied, {"EMBED_METRICS_PORT": str(occupied)})
    assert the_error(stderr, occupied).startswith(
        f"could not bind the metrics endpoint (--metrics-port) to 127.0.0.1:{occupied} "
    )


def test_the_environment_prefix_is_the_settings_own() -> None:
    assert Settings.model_config.get("env_prefix") == ENV_PREFIX
