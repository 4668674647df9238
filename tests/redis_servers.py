"""Real ``redis-server`` processes for the tests: one standalone server, or a 3-node cluster.

Never a fake Redis: every helper spawns ``/usr/bin/redis-server`` (whatever ``PATH`` finds) on
free ports of 127.0.0.1, with persistence off and its files and log in a temporary directory.
Processes are always cleaned up: ``stop()`` in ``__exit__`` and in the fixtures, and a
``weakref.finalize`` safety net (which also runs at interpreter exit) that kills whatever is
left.

Use the fixtures ``redis_server`` and ``redis_cluster`` from a test module or a conftest::

    from tests.redis_servers import redis_cluster, redis_server  # noqa: F401

or, lint-clean where a test takes them as arguments (a parameter named like the imported name
is ruff's F811; the fixtures carry an explicit ``name=``, so an alias registers them under the
same name)::

    from tests.redis_servers import redis_server as redis_server_fixture  # noqa: F401

or ``pytest_plugins = ["tests.redis_servers"]`` in the top-level ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
CLUSTER_TIMEOUT_S = 20.0
RESTART_PORT_RETRY_S = 5.0
CLUSTER_NODE_TIMEOUT_MS = 1000
CLUSTER_BUS_OFFSET = 10000  # Redis's default: the cluster bus listens on port + 10000
LOG_TAIL_LINES = 40
INSTALL_HINT = "`apt-get install -y redis-server` (Debian), or `make test`, which installs it"


class RedisStartError(RuntimeError):
    """A redis-server process did not come up (the message ends with the tail of its log)."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        bus = port + CLUSTER_BUS_OFFSET
        if bus <= 65535 and _port_is_free(bus):
            return port
    raise RuntimeError("no free port pair (P, P + 10000) found on 127.0.0.1")


def redis_binary(name: str = "redis-server") -> str:
    """The path of a Redis executable; fails the test, saying how to install it, if missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH; the tests need a real Redis. Install it with "
            f"{INSTALL_HINT}.",
            pytrace=False,
        )
    return path


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file ('' when there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Safety net: SIGKILL every process still running (for finalizers and atexit)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    procs.clear()


def _probe(port: int, timeout: float) -> redis.Redis:
    """A client that fails fast (redis-py retries a refused connection for seconds by default)."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _ping(port: int, timeout: float = 0.5) -> bool:
    client = _probe(port, timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class _Process:
    """One redis-server process on a fixed port and directory, restartable after a kill."""

    def __init__(
        self,
        port: int,
        directory: Path,
        args: Sequence[str],
        live: list[subprocess.Popen[bytes]],
    ) -> None:
        self.port = port
        self.directory = directory
        self.args = list(args)
        self.log_path = directory / f"redis-{port}.log"
        self._live = live  # shared with the owner's finalizer
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(self.args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [redis_binary(), *self.args],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._live.append(proc)
        return proc

    def _fail(self, why: str) -> RedisStartError:
        return RedisStartError(
            f"redis-server on {HOST}:{self.port} {why}; log {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def start(self, port_retry_s: float = 0.0) -> None:
        """Spawn and wait for PING; retry while the port is still taken, for ``port_retry_s``."""
        if self.running:
            raise RuntimeError(f"redis-server on {HOST}:{self.port} is already running")
        retry_until = time.monotonic() + port_retry_s
        while True:
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.proc = self._spawn()
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if _ping(self.port):
                    return
                code = self.proc.poll()
                if code is not None:
                    break
                if time.monotonic() > deadline:
                    self.kill()
                    raise self._fail(f"did not answer PING within {START_TIMEOUT_S:.0f} s")
                time.sleep(0.02)
            # The process exited: retry only if the port was still busy (e.g. TIME_WAIT).
            with self.log_path.open("rb") as log:
                log.seek(log_start)
                new_output = log.read().decode(errors="replace")
            if "Address already in use" in new_output and time.monotonic() < retry_until:
                time.sleep(0.2)
                continue
            raise self._fail(f"exited with status {code} before answering PING")

    def kill(self) -> None:
        """SIGKILL and wait (a crash: nothing is saved, clients see a dropped connection)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._forget()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``); a no-op when not running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._forget()

    def _forget(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ValueError):
                self._live.remove(self.proc)


class RedisServer:
    """One real ``redis-server`` on a free port of 127.0.0.1, persistence off.

    ``extra_args`` are appended to the command line (e.g. ``["--maxmemory", "1mb"]``).
    """

    def __init__(self, directory: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="redis-test-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self._port = free_port()
        self._live: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._live)
        args = [
            "--port", str(self._port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
            *extra_args,
        ]  # fmt: skip
        self._process = _Process(self._port, directory, args, self._live)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> Self:
        """Spawn the server and wait until it answers PING (``RedisStartError`` after 10 s)."""
        self._process.start()
        return self

    def kill(self) -> None:
        """SIGKILL the server and wait for it: simulates a crash."""
        self._process.kill()

    def restart(self) -> None:
        """Start again on the same port (after ``kill()``; a running server is killed first).

        The data is gone: ``--save ''`` and ``--appendonly no`` mean nothing is persisted.
        """
        self._process.kill()
        self._process.start(port_retry_s=RESTART_PORT_RETRY_S)

    def stop(self) -> None:
        """Terminate the server; idempotent."""
        self._process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new synchronous client of this server (bytes replies); the caller closes it."""
        return redis.Redis(host=HOST, port=self._port, decode_responses=False, **kwargs)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisClusterServers:
    """A local 3-master Redis Cluster (no replicas) on free ports of 127.0.0.1.

    Killing one master leaves its slots uncovered: after ~``cluster-node-timeout`` (1 s) the
    survivors report ``cluster_state:fail``; once it is restarted they return to ``ok``.
    """

    NODES = 3

    def __init__(self, directory: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="redis-cluster-test-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self._live: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._live)
        self._nodes: list[_Process] = []
        ports: list[int] = []
        while len(ports) < self.NODES:
            port = free_cluster_port()
            if port not in ports and port + CLUSTER_BUS_OFFSET not in ports:
                ports.append(port)
        for port in ports:
            node_dir = directory / f"node-{port}"
            args = [
                "--port", str(port),
                "--bind", HOST,
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(node_dir),
                "--daemonize", "no",
                *extra_args,
            ]  # fmt: skip
            self._nodes.append(_Process(port, node_dir, args, self._live))
        self._create_log = directory / "cluster-create.log"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self._nodes]

    @property
    def url(self) -> str:
        """The URL of the first node (a startup node for cluster clients)."""
        return f"redis://{HOST}:{self._nodes[0].port}"

    def log_path(self, i: int) -> Path:
        return self._nodes[i].log_path

    def running(self, i: int) -> bool:
        return self._nodes[i].running

    def start(self) -> Self:
        """Spawn the nodes, join them with ``redis-cli --cluster create``, wait for ``ok``."""
        try:
            for node in self._nodes:
                node.start()
            cli = [
                redis_binary("redis-cli"),
                "--cluster", "create",
                *(f"{HOST}:{port}" for port in self.ports),
                "--cluster-yes",
            ]  # fmt: skip
            result = subprocess.run(
                cli, capture_output=True, timeout=CLUSTER_TIMEOUT_S, check=False
            )
            output = (result.stdout + result.stderr).decode(errors="replace")
            self._create_log.write_text(output)
            if result.returncode != 0:
                raise RedisStartError(
                    f"`{' '.join(cli)}` exited with status {result.returncode}:\n{output}"
                    f"{self._logs_tail()}"
                )
            self.wait_state("ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _logs_tail(self) -> str:
        return "".join(
            f"\n--- {node.log_path}:\n{log_tail(node.log_path, 15)}" for node in self._nodes
        )

    def node_state(self, i: int) -> str:
        """The ``cluster_state`` that node ``i`` reports ('' when it does not answer)."""
        client = _probe(self._nodes[i].port, 1.0)
        try:
            info = client.execute_command("CLUSTER INFO")
        except (redis.RedisError, OSError):
            return ""
        finally:
            client.close()
        if isinstance(info, dict):  # redis-py parses the reply into a dict of str
            state = info.get("cluster_state", info.get(b"cluster_state", ""))
            return state.decode() if isinstance(state, bytes) else str(state)
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return ""

    def states(self) -> dict[int, str]:
        """``cluster_state`` of every running node, by port."""
        return {port: self.node_state(i) for i, port in enumerate(self.ports) if self.running(i)}

    def wait_state(self, expected: str, timeout: float = CLUSTER_TIMEOUT_S) -> None:
        """Wait until every running node reports ``cluster_state:<expected>``."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if states and all(state == expected for state in states.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"cluster nodes did not all report cluster_state:{expected} within "
                    f"{timeout:.0f} s (states by port: {states}){self._logs_tail()}"
                )
            time.sleep(0.05)

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` (a master: its slots become uncovered)."""
        self._nodes[i].kill()

    def restart_node(self, i: int, timeout: float = CLUSTER_TIMEOUT_S) -> None:
        """Start node ``i`` again (same port and dir, so it reuses its nodes-P.conf and
        rejoins), then wait until every node reports ``cluster_state:ok``."""
        self._nodes[i].kill()
        self._nodes[i].start(port_retry_s=RESTART_PORT_RETRY_S)
        self.wait_state("ok", timeout)

    def stop(self) -> None:
        """Terminate every node; idempotent."""
        for node in self._nodes:
            node.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A new synchronous cluster client (bytes replies); the caller closes it."""
        return redis.cluster.RedisCluster(
            host=HOST, port=self._nodes[0].port, decode_responses=False, **kwargs
        )

    def __enter__(self) -> Self:
        if not any(node.running for node in self._nodes):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(name="redis_server")
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started standalone redis-server, stopped after the test."""
    with RedisServer(tmp_path / "redis").start() as server:
        yield server


@pytest.fixture(name="redis_cluster")
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A started 3-master Redis Cluster, stopped after the test."""
    with RedisClusterServers(tmp_path / "redis-cluster").start() as cluster:
        yield cluster
