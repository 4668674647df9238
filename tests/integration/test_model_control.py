"""A live model repository (``model_control=poll``): versions roll in and out while clients
send requests, broken versions are refused, and readiness is reported per model."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelrepo import SPEC_FILE, SpecError, read_spec
from modelrepo.building import mark_building
from modelrepo.model_config import CONFIG_FILE, ModelConfig, VersionPolicy, write_model_config
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient
from service.embedder import Embedder
from tests.integration.harness import ServerThread, running_server

MODEL = "tiny-mlm"
OTHER = "tiny-encoder"
POLL_S = 0.2
SERVICE = "embedding.v1.EmbeddingService"


def publish_copy(models: Path, source: Path, name: str, version: int, tamper: bool = False) -> Path:
    """Publish ``source`` (a version directory) as ``name``/``version`` the way an export does:
    build it in a staging folder beside the versions, then rename it into place. ``tamper``
    changes one byte of the encoder graph after its checksum was recorded."""
    target = models / name / str(version)
    staging = models / name / f".staging-{version}-test"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    spec_path = staging / SPEC_FILE
    raw = json.loads(spec_path.read_text())
    raw["version"], raw["name"] = version, name
    spec_path.write_text(json.dumps(raw, indent=2))
    if tamper:
        graph = staging / read_spec(staging).graph("encoder").file
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    staging.rename(target)
    return target


@pytest.fixture
def repository(imported: dict[str, Path], tmp_path: Path) -> Path:
    """A repository of its own holding tiny-mlm version 1 only."""
    models = tmp_path / "models"
    publish_copy(models, imported["models"] / MODEL / "1", MODEL, 1)
    return models


@contextmanager
def polled(models: Path, **overrides: Any) -> Iterator[ServerThread]:
    with running_server(
        models, model_control="poll", repository_poll_s=POLL_S, **overrides
    ) as server:
        yield server


def embedder_of(server: ServerThread) -> Embedder:
    assert server.app.embedder is not None
    return server.app.embedder


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.01)


def served_versions(server: ServerThread, name: str = MODEL) -> list[int]:
    return embedder_of(server).registry.versions(name)


def test_new_version_under_load(imported: dict[str, Path], repository: Path) -> None:
    with polled(repository) as server, EmbeddingClient(server.target, retries=0) as client:
        first = embedder_of(server).resolve(MODEL, "1")
        answered: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()

        def send() -> None:
            with EmbeddingClient(server.target, retries=0, timeout=30) as own:
                while not stop.is_set():
                    try:
                        answered[own.embed(["the river bank"], MODEL).version] += 1
                    except grpc.RpcError as error:
                        failures.append(f"{error.code()}: {error.details()}")

        senders = [threading.Thread(target=send) for _ in range(4)]
        for sender in senders:
            sender.start()
        try:
            wait_for(lambda: answered["1"] >= 20, what="version 1 answering")
            published = time.monotonic()
            publish_copy(repository, imported["models"] / MODEL / "1", MODEL, 2)
            wait_for(lambda: answered["2"] >= 1, what="version 2 answering")
            switched_s = time.monotonic() - published
            wait_for(lambda: answered["2"] >= 50, what="version 2 answering more")
        finally:
            stop.set()
            for sender in senders:
                sender.join(timeout=30)
        assert failures == []
        assert switched_s < POLL_S + 10  # one poll, then the load and warm-up of a tiny model
        wait_for(lambda: server.app.embedder is not None and not _known(server, 1))
        # Version 1 finished every request it took, then stopped and closed.
        assert first.active == 0
        assert first.answered == answered["1"]
        assert first.runtime.fill_mask is None  # type: ignore[attr-defined]  # closed
        assert first.inference_thread is not None
        with pytest.raises(RuntimeError):
            first.inference_thread.submit(lambda: None)
        assert served_versions(server) == [2]
        assert client.embed(["after"], MODEL).version == "2"
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["pinned"], MODEL, version="1")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert "served versions: [2]" in (raised.value.details() or "")
        info = client.get_model(MODEL)
        assert (info.version, list(info.versions), info.ready) == ("2", ["2"], True)
        assert info.state == pb.MODEL_STATE_READY


def state_of(client: EmbeddingClient, name: str, version: str = "") -> int | None:
    """The state GetModel reports, or None while the server does not know the version."""
    try:
        return client.get_model(name, version).state
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None


def _known(server: ServerThread, version: int) -> bool:
    return embedder_of(server).registry.states.version(MODEL, version) is not None


def test_retired_version_finishes_its_requests_first(
    imported: dict[str, Path], repository: Path
) -> None:
    with polled(repository) as server, EmbeddingClient(server.target, retries=0) as client:
        first = embedder_of(server).resolve(MODEL, "1")
        assert first.inference_thread is not None
        # Hold version 1's inference thread, so the request sent to it stays in flight.
        release = threading.Event()
        first.inference_thread.submit(release.wait)
        result: list[pb.EmbedResponse] = []
        in_flight = threading.Thread(target=lambda: result.append(client.embed(["slow"], MODEL)))
        in_flight.start()
        try:
            wait_for(lambda: first.active == 1, what="the request on version 1")
            publish_copy(repository, imported["models"] / MODEL / "1", MODEL, 2)
            wait_for(lambda: served_versions(server) == [2], what="version 2 alone served")
            assert client.embed(["new"], MODEL).version == "2"  # new requests go to 2
            draining = client.get_model(MODEL, "1")
            assert (draining.state, draining.ready) == (pb.MODEL_STATE_DRAINING, False)
            time.sleep(POLL_S * 3)
            assert _known(server, 1) and first.active == 1  # waits for its request
        finally:
            release.set()
        in_flight.join(timeout=30)
        assert [response.version for response in result] == ["1"]
        wait_for(lambda: not _known(server, 1), what="version 1 unloaded")
        assert first.answered == 1 and first.active == 0


def test_broken_version_is_refused_and_the_old_one_stays(
    imported: dict[str, Path], repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service")
    with polled(repository) as server, EmbeddingClient(server.target, retries=0) as client:
        broken = publish_copy(repository, imported["models"] / MODEL / "1", MODEL, 2, tamper=True)
        wait_for(lambda: state_of(client, MODEL, "2") == pb.MODEL_STATE_FAILED)
        time.sleep(POLL_S * 5)  # several more polls: the refusal is logged once
        refusals = [
            r.getMessage() for r in caplog.records if "refused tiny-mlm/2" in r.getMessage()
        ]
        assert len(refusals) == 1
        graph = broken / read_spec(broken).graph("encoder").file
        assert str(graph) in refusals[0] and "checksum" in refusals[0]
        # The model stays ready on version 1 and says why version 2 is not served.
        info = client.get_model(MODEL)
        assert (info.version, info.ready, info.state) == ("1", True, pb.MODEL_STATE_READY)
        assert "version 2 refused" in info.state_reason and str(graph) in info.state_reason
        failed = client.get_model(MODEL, "2")
        assert (failed.version, failed.ready) == ("2", False)
        assert "checksum" in failed.state_reason
        assert client.embed(["still"], MODEL).version == "1"
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["pinned"], MODEL, version="2")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert "refused" in (raised.value.details() or "")
        assert client.health(f"{SERVICE}/{MODEL}") == "SERVING"
        metrics = server.app.metrics
        assert metrics is not None
        sample = metrics.registry.get_sample_value
        assert sample("embed_model_ready", {"model": MODEL, "version": "1"}) == 1
        assert sample("embed_model_ready", {"model": MODEL, "version": "2"}) == 0
        failed_state = {"model": MODEL, "version": "2", "state": "failed"}
        assert sample("embed_model_state", failed_state) == 1


def test_building_model_is_listed_loading_and_unavailable(
    imported: dict[str, Path], repository: Path
) -> None:
    what = "training tiny-encoder (step 2 of 3: export)"
    with (
        mark_building(repository, OTHER, what),
        polled(repository) as server,
        EmbeddingClient(server.target, retries=0) as client,
    ):
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["too early"], OTHER)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert what in (raised.value.details() or "")
        info = client.get_model(OTHER)
        assert (info.name, info.ready, info.state) == (OTHER, False, pb.MODEL_STATE_LOADING)
        assert what in info.state_reason
        listed = {model.name: model for model in client.list_models().models}
        assert listed[OTHER].state == pb.MODEL_STATE_LOADING
        assert listed[MODEL].state == pb.MODEL_STATE_READY and listed[MODEL].ready
        assert client.health() == "SERVING"  # one model is ready
        assert client.health(f"{SERVICE}/{MODEL}") == "SERVING"
        assert client.health(f"{SERVICE}/{OTHER}") == "NOT_SERVING"
        publish_copy(repository, imported["models"] / OTHER / "1", OTHER, 1)
        wait_for(lambda: client.health(f"{SERVICE}/{OTHER}") == "SERVING")
        assert client.embed(["now"], OTHER).version == "1"


def test_empty_repository_starts_and_serves_the_first_model(
    imported: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "empty"
    with polled(models) as server, EmbeddingClient(server.target, retries=0) as client:
        assert client.health() == "NOT_SERVING"
        assert client.health(SERVICE) == "NOT_SERVING"
        assert list(client.list_models().models) == []
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["x"], MODEL)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        publish_copy(models, imported["models"] / MODEL / "1", MODEL, 1)
        wait_for(lambda: client.health() == "SERVING", what="SERVING once a model is ready")
        assert client.health(SERVICE) == "SERVING"
        assert client.health(f"{SERVICE}/{MODEL}") == "SERVING"
        assert client.embed(["first"], MODEL).version == "1"
        server.call(server.app.health.enter_graceful_shutdown())  # what SIGTERM does first
        assert client.health(f"{SERVICE}/{MODEL}") == "NOT_SERVING"
        assert client.health() == "NOT_SERVING"


def test_empty_repository_without_polling_still_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="holds no models"), running_server(tmp_path / "none"):
        pass


def test_a_bad_config_stops_a_start_without_polling(repository: Path) -> None:
    """Without polling the set is fixed at start: a policy that cannot be read must not fall
    back to serving every version."""
    (repository / MODEL / CONFIG_FILE).write_text('{"version_policy": {"newest": 1}}')
    with pytest.raises(SpecError, match=CONFIG_FILE), running_server(repository):
        pass


def test_version_policy_pins_and_widens_and_a_bad_config_is_refused(
    imported: dict[str, Path], repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service")
    source = imported["models"] / MODEL / "1"
    publish_copy(repository, source, MODEL, 2)
    write_model_config(repository / MODEL, ModelConfig(version_policy=VersionPolicy(specific=(1,))))
    with polled(repository) as server, EmbeddingClient(server.target, retries=0) as client:
        assert served_versions(server) == [1]  # pinned, though 2 is newer
        write_model_config(repository / MODEL, ModelConfig(version_policy=VersionPolicy(latest=2)))
        wait_for(lambda: served_versions(server) == [1, 2], what="the newest two")
        assert client.embed(["newest"], MODEL).version == "2"
        (repository / MODEL / CONFIG_FILE).write_text('{"version_policy": {"newest": 1}}')
        time.sleep(POLL_S * 5)
        refusals = [r.getMessage() for r in caplog.records if CONFIG_FILE in r.getMessage()]
        assert len(refusals) == 1 and "newest" in refusals[0]
        assert served_versions(server) == [1, 2]  # the previous policy holds
        (repository / MODEL / CONFIG_FILE).unlink()  # back to the default: the newest only
        wait_for(lambda: served_versions(server) == [2], what="the default policy")
        shutil.rmtree(repository / MODEL / "2")  # deleted from disk: unloaded, 1 comes back
        wait_for(lambda: served_versions(server) == [1], what="version 1 again")
        assert client.embed(["back"], MODEL).version == "1"
        pin_missing = ModelConfig(version_policy=VersionPolicy(specific=(9,)))
        write_model_config(repository / MODEL, pin_missing)
        time.sleep(POLL_S * 5)
        assert served_versions(server) == [1]  # nothing the policy names is ready: 1 stays


def test_without_polling_every_version_on_disk_is_served(
    imported: dict[str, Path], repository: Path
) -> None:
    publish_copy(repository, imported["models"] / MODEL / "1", MODEL, 2)
    with running_server(repository) as server, EmbeddingClient(server.target) as client:
        assert served_versions(server) == [1, 2]
        assert client.health(f"{SERVICE}/{MODEL}") == "SERVING"
        info = client.get_model(MODEL)
        assert (info.version, info.state, info.ready) == ("2", pb.MODEL_STATE_READY, True)


def test_a_repository_that_goes_away_keeps_what_is_served(
    imported: dict[str, Path], tmp_path: Path
) -> None:
    """A volume remounted or a directory swapped under a running server is a read error, not
    an empty repository: nothing is retired, and polling goes on once it is back."""
    models = tmp_path / "models"
    publish_copy(models, imported["models"] / MODEL / "1", MODEL, 1)
    with polled(models) as server, EmbeddingClient(server.target, retries=0) as client:
        wait_for(lambda: client.health() == "SERVING", what="SERVING")
        away = models.rename(tmp_path / "away")
        time.sleep(10 * POLL_S)
        assert client.health() == "SERVING"
        assert client.embed(["still here"], MODEL).version == "1"
        away.rename(models)
        publish_copy(models, imported["models"] / MODEL / "1", MODEL, 2)
        wait_for(lambda: client.embed(["new"], MODEL).version == "2", what="version 2")
