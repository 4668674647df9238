"""The first start, as ``make serve`` runs it on an empty repository: the launcher starts the
server and a builder that queues two models, then builds them in turn. While the first is built,
the second answers UNAVAILABLE saying it is queued (never NOT_FOUND, from the server's first
answer on) until it is published; then it answers.

The builder is a small real program using the real marker API and publishing real (tiny)
word2vec versions, so the server, the launcher and the repository are all the real ones; only
the training is left out (it takes minutes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from export.word2vec.exporter import import_word2vec
from modelrepo.building import Planned, queue_builds
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient
from tests.integration.harness import running_server
from tests.integration.test_launch import Launched, launched, python_command, script
from tests.redis_servers import log_tail
from tests.word2vec_files import save_c_formats, train_tiny_vectors

# Queues "first" and "second" (first thing: before any heavy import), then builds each in turn:
# it reports a step, waits for the test to open its gate, publishes the tiny vectors.
QUEUEING_BUILDER = """
import sys, time
from pathlib import Path
from modelrepo.building import Planned, queue_builds
models = Path(sys.argv[sys.argv.index("--models-dir") + 1])
vectors, gates = Path(sys.argv[1]), Path(sys.argv[2])
plan = [Planned("first", "building first", 120.0), Planned("second", "building second", 60.0)]
with queue_builds(models, plan) as queue:
    print("builder: queued", flush=True)
    from export.word2vec.exporter import import_word2vec
    for name in ("first", "second"):
        with queue.build(name):
            queue.report(name, 1, 4, 180.0)
            while not (gates / name).exists():
                time.sleep(0.05)
            import_word2vec(vectors, False, models, name)
        print(f"builder: published {name}", flush=True)
"""

Answer = tuple[grpc.StatusCode, str]


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_c_formats(train_tiny_vectors(), tmp_path_factory.mktemp("w2v-files"))["text"]


def embed(client: EmbeddingClient, model: str) -> Answer:
    try:
        client.embed(["apple bank"], model)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


class Watch:
    """Every answer a model gave, in order: none may be NOT_FOUND."""

    def __init__(self, launcher: Launched, client: EmbeddingClient) -> None:
        self.launcher = launcher
        self.client = client
        self.answers: dict[str, list[Answer]] = {"first": [], "second": []}

    def ask(self, model: str) -> Answer:
        answer = embed(self.client, model)
        self.answers[model].append(answer)
        assert answer[0] != grpc.StatusCode.NOT_FOUND, (model, answer, self.log())
        return answer

    def until(self, what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
        """Ask both models again and again until ``done``."""
        deadline = time.monotonic() + timeout
        while True:
            self.ask("first")
            self.ask("second")
            if done():
                return
            assert time.monotonic() < deadline, f"never {what}:\n{self.log()}"
            assert self.launcher.process.poll() is None, f"launcher exited:\n{self.log()}"
            time.sleep(0.2)

    def last(self, model: str) -> Answer:
        return self.answers[model][-1]

    def log(self) -> str:
        return log_tail(self.launcher.log)


def test_a_queued_model_is_unavailable_saying_so_until_it_is_published(
    vectors_file: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"  # a fresh clone: not even the directory
    gates = tmp_path / "gates"
    gates.mkdir()
    builder = python_command(
        script(tmp_path, "builder", QUEUEING_BUILDER), str(vectors_file), str(gates)
    )
    with launched(tmp_path, models, builder, "--model-control", "poll") as launcher:
        # no wait for the builder here: the launcher starts the server once it has queued
        with EmbeddingClient(launcher.target, timeout=10, retries=0) as client:
            watch = Watch(launcher, client)
            wait_listening(client, launcher)
            # From the first answer on (UNAVAILABLE "loading" until the server's first read of
            # the repository), while "first" is being built:
            # the builder's estimate (2 minutes) until it has measured its rate (3 minutes)
            watch.until("measured", lambda: "step 1 of 4" in watch.last("first")[1], timeout=30)
            code, details = watch.last("first")
            assert code == grpc.StatusCode.UNAVAILABLE, details
            assert (
                "being built: building first, step 1 of 4, about 3 minutes of training left"
                in details
            )
            code, details = watch.ask("second")
            assert code == grpc.StatusCode.UNAVAILABLE, details
            assert "queued: waits for first (about 3 minutes)" in details, details
            info = client.get_model("second")
            assert (info.state, info.ready) == (pb.MODEL_STATE_LOADING, False)
            assert info.state_reason == "queued: waits for first (about 3 minutes)"
            listed = {model.name: model.state for model in client.list_models().models}
            assert listed == {"first": pb.MODEL_STATE_LOADING, "second": pb.MODEL_STATE_LOADING}

            (gates / "first").touch()
            watch.until("first served", lambda: watch.last("first")[0] == grpc.StatusCode.OK)
            code, details = watch.ask("second")
            assert code == grpc.StatusCode.UNAVAILABLE, details
            assert "building second" in details or "queued" in details, details

            (gates / "second").touch()
            watch.until("second served", lambda: watch.last("second")[0] == grpc.StatusCode.OK)
            before = [
                answer for answer in watch.answers["second"] if answer[0] != grpc.StatusCode.OK
            ]
            assert {code for code, _ in before} == {grpc.StatusCode.UNAVAILABLE}
            assert any("queued: waits for first" in details for _, details in before)
        launcher.wait_for_output(r"every default model is built")
        assert launcher.interrupt() == 0, log_tail(launcher.log)
    assert not any(models.rglob(".building"))


def wait_listening(client: EmbeddingClient, launcher: Launched, timeout: float = 60.0) -> None:
    """Until the server answers at all (its health, whatever it says)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.health()
            return
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert time.monotonic() < deadline, f"never listening:\n{log_tail(launcher.log)}"
            time.sleep(0.1)


def test_markers_are_read_between_passes_of_a_slow_poll(vectors_file: Path, tmp_path: Path) -> None:
    """A model queued after the server's last pass is UNAVAILABLE within about a second, its
    progress follows, and once its marker goes (published) a pass runs at once."""
    models = tmp_path / "models"
    with (
        running_server(models, model_control="poll", repository_poll_s=600) as server,
        EmbeddingClient(server.target, timeout=10, retries=0) as client,
    ):
        wait_answer(client, "late", lambda code, _: code == grpc.StatusCode.NOT_FOUND)
        with queue_builds(models, [Planned("late", "building late")]) as queue:
            wait_answer(client, "late", lambda _, details: "queued: next to be built" in details)
            with queue.build("late"):
                queue.report("late", 2, 4, 600.0)
                wait_answer(
                    client,
                    "late",
                    lambda _, details: (
                        "being built: building late, step 2 of 4, about 10 minutes of training left"
                        in details
                    ),
                )
                import_word2vec(vectors_file, False, models, "late")
        wait_answer(client, "late", lambda code, _: code == grpc.StatusCode.OK, timeout=30)


def wait_answer(
    client: EmbeddingClient,
    model: str,
    wanted: Callable[[grpc.StatusCode, str], bool],
    timeout: float = 5.0,
) -> None:
    """Ask until the answer is ``wanted``: far sooner than the next pass of the poll."""
    deadline = time.monotonic() + timeout
    while not wanted(*(answer := embed(client, model))):
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
