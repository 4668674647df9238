"""``python -m service.launch`` with real processes: the server answers while the builder runs,
a stop signal ends both cleanly, a failed build leaves the server serving, a failed server
takes the builder down, no child outlives a killed launcher, and (with ``--model-control
poll``) a model the builder publishes is served without a restart."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from export.word2vec.exporter import import_word2vec
from modelrepo.building import building
from service.client import EmbeddingClient
from tests.redis_servers import log_tail
from tests.word2vec_files import save_c_formats, train_tiny_vectors

ROOT = Path(__file__).resolve().parents[2]
PIDS = re.compile(r"^python -m service\.launch: .*\(pid (\d+)\)", re.M)

# Marks the model "slow" as being built, says so, then waits to be interrupted.
SLOW_BUILDER = """
import sys, time
from pathlib import Path
from modelrepo.building import mark_building
models = Path(sys.argv[sys.argv.index("--models-dir") + 1])
with mark_building(models, "slow", "training slow from scratch"):
    print("builder: started", flush=True)
    time.sleep(600)
"""

# Publishes the tiny word2vec vectors as the default "word2vec", as `export defaults` would.
PUBLISHING_BUILDER = """
import sys, time
from pathlib import Path
from export.word2vec.exporter import import_word2vec
from modelrepo.building import mark_building
models = Path(sys.argv[sys.argv.index("--models-dir") + 1])
with mark_building(models, "word2vec", "training word2vec"):
    time.sleep(2)
    import_word2vec(Path(sys.argv[1]), False, models, "word2vec")
print("builder: published word2vec", flush=True)
"""


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_c_formats(train_tiny_vectors(), tmp_path_factory.mktemp("w2v-files"))["text"]


@pytest.fixture(scope="module")
def repository(vectors_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository already holding one model, "w2v"."""
    models = tmp_path_factory.mktemp("launch") / "models"
    import_word2vec(vectors_file, False, models, "w2v")
    return models


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path


class Launched:
    """One launcher process in a session (process group) of its own, as a terminal runs it."""

    def __init__(self, tmp_path: Path, models: Path, builder: str, *server_args: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "launch.log"
        command = [
            sys.executable, "-m", "service.launch", "--builder", builder, "--stop-timeout-s", "30",
            "--models-dir", str(models), "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-port", "0", *server_args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output(), re.M):
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{log_tail(self.log)}"
            assert self.process.poll() is None, f"launcher exited:\n{log_tail(self.log)}"
            time.sleep(0.1)

    def children(self) -> list[int]:
        """The server's and the builder's pids, as the launcher reported them."""
        return [int(pid) for pid in PIDS.findall(self.output())]

    def embed_when_served(self, model: str, timeout: float = 120.0) -> list[str]:
        """Retry one real Embed call until the server answers it; the tokens it returned."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with EmbeddingClient(self.target, timeout=10) as client:
                    response = client.embed(["apple bank"], model, pooling="none")
                return list(response.embeddings[0].tokens)
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{model} never served:\n{log_tail(self.log)}") from error
                assert self.process.poll() is None, f"launcher exited:\n{log_tail(self.log)}"
                time.sleep(0.5)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the launcher's process group; its exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.children():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def launched(tmp_path: Path, models: Path, builder: str, *server_args: str) -> Iterator[Launched]:
    launcher = Launched(tmp_path, models, builder, *server_args)
    try:
        yield launcher
    finally:
        launcher.close()


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def python_command(path: Path, *args: str) -> str:
    return shlex.join([sys.executable, str(path), *args])


def test_server_answers_while_the_builder_runs_and_ctrl_c_stops_both(
    repository: Path, tmp_path: Path
) -> None:
    builder = python_command(script(tmp_path, "slow", SLOW_BUILDER))
    with launched(tmp_path, repository, builder) as launcher:
        launcher.wait_for_output(r"^builder: started$")
        assert launcher.embed_when_served("w2v") == ["apple", "bank"]
        assert building(repository) == {"slow": "being built: training slow from scratch"}
        children = launcher.children()
        assert len(children) == 2

        assert launcher.interrupt() == 0, log_tail(launcher.log)
        assert wait_gone(children) == []
        assert "stopped" in launcher.output()  # the server drained and said so
        assert building(repository) == {}  # the builder's cleanup ran
        assert not (repository / "slow" / ".building").exists()


def test_a_failed_build_is_reported_and_the_server_goes_on(
    repository: Path, tmp_path: Path
) -> None:
    failing = script(tmp_path, "failing", "import sys\nprint('builder: disk full')\nsys.exit(3)\n")
    with launched(tmp_path, repository, python_command(failing)) as launcher:
        launcher.wait_for_output(r"the build failed with status 3")
        assert launcher.embed_when_served("w2v") == ["apple", "bank"]
        assert launcher.process.poll() is None
        assert launcher.interrupt() == 0, log_tail(launcher.log)


def test_a_server_that_cannot_start_stops_the_builder(repository: Path, tmp_path: Path) -> None:
    builder = python_command(script(tmp_path, "slow", SLOW_BUILDER))
    with launched(tmp_path, repository, builder, "--max-batch-size", "0") as launcher:
        assert launcher.process.wait(60) == 2, log_tail(launcher.log)  # a settings error
        assert "the server exited with status 2; stopping the builder" in launcher.output()
        assert wait_gone(launcher.children()) == []
        assert building(repository) == {}


def test_no_child_outlives_a_killed_launcher(repository: Path, tmp_path: Path) -> None:
    builder = python_command(script(tmp_path, "slow", SLOW_BUILDER))
    with launched(tmp_path, repository, builder) as launcher:
        launcher.wait_for_output(r"^builder: started$")
        assert launcher.embed_when_served("w2v") == ["apple", "bank"]
        children = launcher.children()
        launcher.process.kill()
        launcher.process.wait()
        assert wait_gone(children) == [], log_tail(launcher.log)


def test_a_model_published_by_the_builder_is_served_without_a_restart(
    vectors_file: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    builder = python_command(script(tmp_path, "publish", PUBLISHING_BUILDER), str(vectors_file))
    poll = ("--model-control", "poll", "--repository-poll-s", "0.5")
    with launched(tmp_path, models, builder, *poll) as launcher:
        assert launcher.embed_when_served("word2vec") == ["apple", "bank"]
        launcher.wait_for_output(r"^builder: published word2vec$")
        launcher.wait_for_output(r"every default model is built")
        assert launcher.interrupt() == 0, log_tail(launcher.log)
