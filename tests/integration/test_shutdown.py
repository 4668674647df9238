"""SIGTERM under load, to a real ``python -m service`` process: health goes NOT_SERVING at
once, new calls get UNAVAILABLE, every accepted call (MostSimilar too) is answered, and it
exits 0 in time."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx2 as httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from export.word2vec.exporter import import_word2vec
from service.client import EmbeddingClient
from tests.integration.server_process import ServerProcess
from tests.word2vec_files import save_c_formats, train_tiny_vectors

GRACE_S = 20.0
WORKERS = 6


def terminate_under_load(
    server: ServerProcess,
    load: Callable[[int], None],
    sent: Callable[[], int],
    terminated: threading.Event,
) -> tuple[float, int, float]:
    """``WORKERS`` threads run ``load(worker)``; once 30 calls were sent, SIGTERM (and
    ``terminated`` set for the workers), then the exit: (signalled at, exit code, seconds to
    exit), every worker joined."""
    workers = [threading.Thread(target=load, args=(worker,)) for worker in range(WORKERS)]
    for thread in workers:
        thread.start()
    while sent() < 30:
        time.sleep(0.01)
    assert server.process is not None
    signalled_at = time.monotonic()
    server.process.terminate()
    terminated.set()
    exit_code = server.process.wait(timeout=GRACE_S + 10)
    exited_s = time.monotonic() - signalled_at
    for thread in workers:
        thread.join(timeout=30)
    return signalled_at, exit_code, exited_s


def test_sigterm_under_load_answers_every_call(imported: dict[str, Path], tmp_path: Path) -> None:
    server = ServerProcess(
        sys.executable,
        imported["models"],
        tmp_path / "server.log",
        args=["--grace-period-s", str(GRACE_S), "--max-batch-size", "2", "--cache", "off"],
    ).start()
    with server:
        codes: list[tuple[float, grpc.StatusCode, str]] = []  # (sent at, code, details)
        lock = threading.Lock()
        terminated = threading.Event()
        health_changes: list[tuple[float, int]] = []

        def watch_health() -> None:
            with grpc.insecure_channel(server.target) as channel:
                stream = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service="")
                )
                try:
                    for update in stream:
                        health_changes.append((time.monotonic(), update.status))
                except grpc.RpcError:
                    pass  # the server closed the stream on its way out

        def load(worker: int) -> None:
            with EmbeddingClient(server.target, timeout=30, retries=0) as client:
                for number in range(10_000):
                    texts = [f"worker {worker} call {number} text {i} river bank" for i in range(6)]
                    sent_at = time.monotonic()
                    try:
                        client.embed(texts, "tiny-mlm")
                        code, details = grpc.StatusCode.OK, ""
                    except grpc.RpcError as error:
                        code, details = error.code(), error.details() or ""
                    with lock:
                        codes.append((sent_at, code, details))
                    if terminated.is_set() and code == grpc.StatusCode.UNAVAILABLE:
                        return

        watcher = threading.Thread(target=watch_health)
        watcher.start()
        signalled_at, exit_code, exited_s = terminate_under_load(
            server, load, lambda: len(codes), terminated
        )
        watcher.join(timeout=30)

    counts = Counter(code for _, code, _ in codes)
    ok, unavailable = counts[grpc.StatusCode.OK], counts[grpc.StatusCode.UNAVAILABLE]
    assert ok + unavailable == len(codes), counts  # nothing failed any other way
    # Sent before the signal: computed, or (if it had not begun) refused by the servicer.
    early = [(code, details) for sent, code, details in codes if sent < signalled_at]
    assert all(
        code == grpc.StatusCode.OK or "shutting down" in details for code, details in early
    ), early
    assert unavailable >= WORKERS  # every worker's first call after the stop was refused
    assert exit_code == 0 and exited_s < GRACE_S
    statuses = [status for _, status in health_changes]
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    not_serving_after = health_changes[-1][0] - signalled_at
    assert not_serving_after < 3.0  # at once, with slack for a loaded machine
    print(
        f"\nSIGTERM under load: {len(codes)} calls, {ok} OK, {unavailable} UNAVAILABLE; "
        f"NOT_SERVING after {not_serving_after * 1000:.0f} ms, exit 0 after {exited_s:.2f} s"
    )
    log = (tmp_path / "server.log").read_text()
    assert "shutting down" in log and "stopped" in log


HOLD_S = 1.5
HELD_DRIVER = '''"""Test-only: python -m service with word2vec's most_similar held in the model
for a while (as a scan of a large vocabulary is), and a file touched when a query arrives."""
import sys
import time
from pathlib import Path

from service.__main__ import main
from service.runtime.word2vec import Word2VecRuntime

arrived = Path(sys.argv[1])
original = Word2VecRuntime.most_similar


def held(self, positive, negative, top_k):
    arrived.touch()
    time.sleep({hold_s})
    return original(self, positive, negative, top_k)


Word2VecRuntime.most_similar = held
sys.exit(main(sys.argv[2:]))
'''


def test_sigterm_during_a_held_most_similar_answers_it_before_exit(tmp_path: Path) -> None:
    """MostSimilar is admitted like Embed, so the drain on SIGTERM waits for it: a query held
    in the model when the signal arrives is answered, and the process then exits 0."""
    files = save_c_formats(train_tiny_vectors(), tmp_path / "files")
    import_word2vec(files["binary"], True, tmp_path / "models", "w2v")
    driver, arrived = tmp_path / "held_server.py", tmp_path / "arrived"
    driver.write_text(HELD_DRIVER.format(hold_s=HOLD_S))
    server = ServerProcess(
        sys.executable,
        tmp_path / "models",
        tmp_path / "server.log",
        args=["--grace-period-s", "20"],
    )
    server.command = [sys.executable, str(driver), str(arrived), *server.command[3:]]
    with server.start():
        outcome: dict[str, object] = {}

        def ask() -> None:
            with EmbeddingClient(server.target, timeout=30, retries=0) as client:
                try:
                    outcome["neighbors"] = [
                        n.word for n in client.most_similar("w2v", ["apple"]).neighbors
                    ]
                except grpc.RpcError as error:
                    outcome["error"] = f"{error.code()}: {error.details()}"
                outcome["at"] = time.monotonic()

        asking = threading.Thread(target=ask)
        asking.start()
        while not arrived.exists():
            time.sleep(0.005)
        assert server.process is not None
        signalled_at = time.monotonic()
        server.process.terminate()
        exit_code = server.process.wait(timeout=30)
        exited_at = time.monotonic()
        asking.join(timeout=30)

    assert "error" not in outcome, outcome
    assert len(outcome["neighbors"]) == 10  # type: ignore[arg-type]
    assert signalled_at < outcome["at"] < exited_at  # type: ignore[operator]
    assert exit_code == 0
    log = (tmp_path / "server.log").read_text()
    assert "shutting down" in log and "stopped" in log


HTTP_READY = re.compile(r"HTTP API on http://127\.0\.0\.1:(\d+)/v1$", re.M)


def test_sigterm_under_http_load_loses_nothing(imported: dict[str, Path], tmp_path: Path) -> None:
    """The HTTP API drains like gRPC: every request sent gets 200, or 503 once shutting down
    (never a dropped connection or another status), and the process exits 0 in time."""
    log = tmp_path / "server.log"
    server = ServerProcess(
        sys.executable,
        imported["models"],
        log,
        args=["--grace-period-s", str(GRACE_S), "--max-batch-size", "2", "--http-port", "0"],
    ).start()
    found = HTTP_READY.search(log.read_text())
    assert found is not None, log.read_text()
    url = f"http://127.0.0.1:{found.group(1)}/v1/embeddings"
    with server:
        statuses: list[tuple[float, int | str]] = []  # (sent at, status or what failed)
        lock = threading.Lock()
        terminated = threading.Event()

        def load(worker: int) -> None:
            with httpx.Client(timeout=30) as http:
                for number in range(10_000):
                    texts = [f"worker {worker} call {number} text {i} river bank" for i in range(6)]
                    sent_at = time.monotonic()
                    outcome: int | str
                    try:
                        outcome = http.post(
                            url, json={"model": "tiny-mlm", "input": texts}
                        ).status_code
                    except httpx.HTTPError as error:
                        outcome = type(error).__name__
                    with lock:
                        statuses.append((sent_at, outcome))
                    if terminated.is_set() and outcome == 503:
                        return

        _, exit_code, exited_s = terminate_under_load(
            server, load, lambda: len(statuses), terminated
        )

    counts = Counter(outcome for _, outcome in statuses)
    assert set(counts) <= {200, 503}, counts  # sent = 200 + 503
    assert counts[503] >= WORKERS  # every worker's first request after the stop was refused
    assert exit_code == 0 and exited_s < GRACE_S
    print(f"\nSIGTERM under HTTP load: {len(statuses)} requests, {dict(counts)}")
