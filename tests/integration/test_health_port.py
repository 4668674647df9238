"""The plaintext health-only port (``health_port``, for kubelet's probes when the API port
needs TLS or a token) and ``python -m service.healthcheck`` (the image's HEALTHCHECK)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from service.client import EmbeddingClient
from service.client import main as client_main
from service.healthcheck import check
from tests.integration.harness import ServerThread, running_server, settings_for
from tests.redis_servers import free_port


def healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_")}
    return subprocess.run(
        [sys.executable, "-m", "service.healthcheck"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_health_port_follows_the_lifecycle_and_serves_nothing_else(
    imported: dict[str, Path],
) -> None:
    health_port = free_port()
    server = ServerThread(settings_for(imported["models"], health_port=health_port))
    health_target = f"127.0.0.1:{health_port}"
    try:
        server.call(server.app.listen())
        assert server.app.health_port == health_port
        assert check(health_target) == "NOT_SERVING"
        assert client_main(["--target", health_target, "health"]) == 1  # not yet SERVING
        server.call(server.app.load())
        assert check(health_target) == "SERVING"
        assert client_main(["--target", health_target, "health"]) == 0
        assert check(server.target) == "SERVING"  # the API port keeps its own health
        with EmbeddingClient(health_target, retries=0) as client:
            with pytest.raises(grpc.RpcError) as refused:
                client.embed(["only health here"], "tiny-mlm")
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with EmbeddingClient(server.target, retries=0) as client:
            assert len(client.embed(["the API is on its own port"], "tiny-mlm").embeddings) == 1

        # The image's HEALTHCHECK reads the server's settings: the health port when set.
        ports = {"EMBED_PORT": str(server.app.port), "EMBED_HEALTH_PORT": str(health_port)}
        done = healthcheck(**ports)
        assert done.returncode == 0 and f"{health_target}: SERVING" in done.stdout, done
        done = healthcheck(EMBED_PORT=str(server.app.port))
        assert done.returncode == 0 and f"{server.target}: SERVING" in done.stdout, done
    finally:
        server.close()
    assert check(health_target, timeout=2) == "UNAVAILABLE"


def test_the_cli_takes_a_list_of_addresses_and_a_balancing_policy(
    imported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with running_server(imported["models"]) as server:
        targets = f"ipv4:{server.target},{server.target}"
        for policy in ("round_robin", "pick_first"):
            command = ["--target", targets, "--load-balancing", policy, "embed", "--model"]
            assert client_main([*command, "tiny-mlm", "--json", "two addresses"]) == 0
            assert capsys.readouterr().out.startswith("[[")


def test_the_healthcheck_fails_when_nothing_serves() -> None:
    done = healthcheck(EMBED_PORT=str(free_port()), EMBED_HOST="0.0.0.0")
    assert done.returncode == 1
    assert "127.0.0.1:" in done.stdout and "UNAVAILABLE" in done.stdout
