"""The record of each model version's state, and what it says of a model as a whole."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from service.metrics import Metrics
from service.registry.states import ModelState, ModelStates


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_ready_wins_and_reports_refused_and_loading_versions() -> None:
    states = ModelStates()
    states.set("bert", 1, ModelState.READY)
    states.set("bert", 2, ModelState.FAILED, "model.onnx: checksum mismatch")
    states.set("bert", 3, ModelState.LOADING)
    summary = states.summary("bert")
    assert summary is not None and summary.state is ModelState.READY
    assert summary.reason == "loading version 3; version 2 refused: model.onnx: checksum mismatch"


def test_loading_then_draining_then_failed_without_a_ready_version() -> None:
    states = ModelStates()
    states.set("bert", 1, ModelState.FAILED, "bad")
    states.set("bert", 2, ModelState.DRAINING)
    states.set_building({"elmo": "training ELMo"})
    assert states.summary("bert").state is ModelState.DRAINING  # type: ignore[union-attr]
    states.set("bert", 3, ModelState.LOADING)
    assert states.summary("bert").state is ModelState.LOADING  # type: ignore[union-attr]
    states.forget("bert", 3)
    states.forget("bert", 2)
    failed = states.summary("bert")
    assert failed is not None and failed.state is ModelState.FAILED
    assert failed.reason == "version 1 refused: bad"
    building = states.summary("elmo")
    assert building is not None and building.state is ModelState.LOADING
    assert "training ELMo" in building.reason
    assert states.summary("unknown") is None
    assert states.known == {"bert", "elmo"}
    states.set_building({})
    states.forget("bert", 1)
    assert states.known == set() and states.names() == []


def test_metrics_follow_the_states() -> None:
    metrics = Metrics(CollectorRegistry())
    states = ModelStates(metrics)
    states.set("bert", 2, ModelState.LOADING)
    assert sample(metrics, "embed_model_ready", model="bert", version="2") == 0
    assert sample(metrics, "embed_model_state", model="bert", version="2", state="loading") == 1
    states.set("bert", 2, ModelState.READY)
    assert sample(metrics, "embed_model_ready", model="bert", version="2") == 1
    assert sample(metrics, "embed_model_state", model="bert", version="2", state="ready") == 1
    assert sample(metrics, "embed_model_state", model="bert", version="2", state="loading") == 0
    states.forget("bert", 2)
    assert sample(metrics, "embed_model_ready", model="bert", version="2") == 0
    assert sample(metrics, "embed_model_state", model="bert", version="2", state="ready") is None
