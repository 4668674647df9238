"""One session factory: the server's graphs, the raw-engine benchmark and export validation
open identically configured ONNX Runtime sessions, differing only where ``SessionOptions`` say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from bench.common.raw import encoder_session
from bench.common.servers import Engine
from export.validate import cpu_session
from modelrepo import GraphSpec, TensorSpec
from service.runtime.session import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    Device,
    GraphSession,
    IoBinding,
    SessionOptions,
    choose_providers,
    open_session,
    session_device,
)
from tests.unit.modelrepo.test_repository import make_spec

GRAPH = GraphSpec(
    file="encoder.onnx",
    inputs=(TensorSpec(name="x", dtype="float32", shape=("batch_size", 3)),),
    outputs=(TensorSpec(name="y", dtype="float32", shape=("batch_size", 3)),),
)
CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
Settings = tuple[int, int, ort.ExecutionMode, ort.GraphOptimizationLevel, int, list[str]]


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version directory whose encoder doubles its input: y = x + x."""
    root = tmp_path_factory.mktemp("session")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch_size", 3])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "double", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(root / GRAPH.file))
    return root


def settings(session: ort.InferenceSession) -> Settings:
    options = session.get_session_options()
    return (
        options.intra_op_num_threads,
        options.inter_op_num_threads,
        options.execution_mode,
        options.graph_optimization_level,
        options.log_severity_level,
        session.get_providers(),
    )


def test_the_factory_applies_the_options_and_runs_the_graph(directory: Path) -> None:
    options = SessionOptions(device="cpu", intra_op_threads=2, inter_op_threads=3)
    session = open_session(directory / GRAPH.file, options)
    assert settings(session) == (
        2,
        3,
        ort.ExecutionMode.ORT_SEQUENTIAL,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        3,
        ["CPUExecutionProvider"],
    )
    assert session_device(session) == "cpu"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = session.run(["y"], {"x": x})
    assert np.array_equal(y, 2 * x)


def test_server_benchmark_and_validation_open_the_same_session(directory: Path) -> None:
    path = directory / GRAPH.file
    served = GraphSession(path, GRAPH, SessionOptions(device="cpu"), "double").session
    expected = settings(open_session(path, SessionOptions(device="cpu")))
    assert settings(served) == expected
    assert settings(cpu_session(path)) == expected
    assert settings(encoder_session(directory, make_spec(), Engine(threads=0))) == expected


def test_the_benchmark_thread_count_is_an_option_not_a_copy(directory: Path) -> None:
    benched = settings(encoder_session(directory, make_spec(), Engine(threads=3)))
    assert benched == settings(
        open_session(directory / GRAPH.file, SessionOptions(device="cpu", intra_op_threads=3))
    )
    assert benched[0] == 3


def test_cuda_is_used_when_asked_for_and_never_faked(directory: Path) -> None:
    """Asked for CUDA, a session runs on CUDA or is refused; it never falls back to CPU."""
    path = directory / GRAPH.file
    if not CUDA:
        with pytest.raises(RuntimeError, match="no CUDA provider"):
            open_session(path, SessionOptions(device="cuda"))
        return
    try:
        session = open_session(path, SessionOptions(device="cuda"))
    except RuntimeError as error:  # onnxruntime-gpu on a machine without a usable GPU
        assert "fell back to CPU" in str(error)
        return
    assert session_device(session) == "cuda"
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    x = np.ones((4, 3), dtype=np.float32)
    (y,) = GraphSession(path, GRAPH, SessionOptions(device="cuda"), "double").run(["y"], {"x": x})
    assert np.array_equal(y, 2 * x)


def test_threads_spin_between_runs_only_when_asked(directory: Path) -> None:
    path = directory / GRAPH.file
    for spin_wait, allowed in ((False, "0"), (True, None)):
        options = open_session(path, SessionOptions(device="cpu", spin_wait=spin_wait))
        entries = options.get_session_options()
        if allowed is None:
            with pytest.raises(RuntimeError):  # not set: ONNX Runtime's default, spinning
                entries.get_session_config_entry("session.intra_op.allow_spinning")
        else:
            assert entries.get_session_config_entry("session.intra_op.allow_spinning") == allowed


@pytest.mark.parametrize(
    ("device", "available", "chosen"),
    [
        ("cpu", [CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER]),
        ("auto", [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),
        (
            "auto",
            ["TensorrtExecutionProvider", CUDA_PROVIDER, CPU_PROVIDER],
            [CUDA_PROVIDER, CPU_PROVIDER],
        ),
        ("auto", [CPU_PROVIDER], [CPU_PROVIDER]),
        ("cuda", [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),
    ],
)
def test_providers_are_chosen_from_what_the_build_offers(
    device: Device, available: list[str], chosen: list[str]
) -> None:
    """What a GPU build (``onnxruntime-gpu`` lists CUDA) and a CPU build would be asked for."""
    assert choose_providers(device, available) == chosen


def test_cuda_from_a_cpu_build_is_refused_with_what_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"onnxruntime-gpu.*--device cpu"):
        choose_providers("cuda", [CPU_PROVIDER])


@pytest.mark.parametrize(
    ("io_binding", "device", "bound"),
    [
        ("auto", "cpu", False),
        ("auto", "cuda", True),
        ("on", "cpu", True),
        ("on", "cuda", True),
        ("off", "cpu", False),
        ("off", "cuda", False),
    ],
)
def test_io_binding_is_on_for_cuda_unless_set(
    io_binding: IoBinding, device: str, bound: bool
) -> None:
    assert SessionOptions(io_binding=io_binding).binds_io(device) is bound


def test_the_bound_path_answers_as_the_plain_run(directory: Path) -> None:
    """IOBinding, the path CUDA sessions take, run on the CPU provider: same outputs, only those
    asked for, and the inputs may be non-contiguous views."""
    path = directory / GRAPH.file
    bound = GraphSession(path, GRAPH, SessionOptions(device="cpu", io_binding="on"), "bound")
    plain = GraphSession(path, GRAPH, SessionOptions(device="cpu", io_binding="off"), "plain")
    assert (bound.bound, plain.bound) == (True, False)
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]  # not contiguous
    (from_bound,) = bound.run(["y"], {"x": x})
    (from_plain,) = plain.run(["y"], {"x": x})
    assert from_bound.shape == (4, 3)
    assert np.array_equal(from_bound, from_plain)
    assert np.array_equal(from_bound, 2 * x)
