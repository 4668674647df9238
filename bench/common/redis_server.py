"""A private ``redis-server`` for the cache section: its own port, no persistence, always stopped.

The benchmark never uses a Redis it did not start (least of all a shared one on port 6379): a
fresh, empty server makes every first request a miss and keeps other users' keys out of it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
INSTALL_HINT = "redis-server is not installed; install it with `apt-get install -y redis-server`"


class RedisUnavailable(RuntimeError):
    """No redis-server binary, or the one started did not answer PING in time."""


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now (the OS picks it, so never 6379 in use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_ping(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once the server answers PING; fail early if it exited, or after the timeout."""
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
    finally:
        client.close()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RedisUnavailable(f"redis-server at {url} did not answer PING:\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers: the server must never outlive the benchmark."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def redis_server() -> Iterator[str]:
    """A started, empty redis-server on a free port of 127.0.0.1; yields its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        port = free_port()
        log = Path(directory) / "redis.log"
        command = [
            binary,
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            "--logfile", str(log),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"redis://{HOST}:{port}/0"
        try:
            _wait_for_ping(url, process, log)
            yield url
        finally:
            _stop(process)
