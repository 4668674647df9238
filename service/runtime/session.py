"""ONNX Runtime sessions: provider choice (CUDA, then CPU), threads, and running a graph.

``open_session`` is the one place an ``InferenceSession`` is configured: the server's graphs,
the raw-engine benchmark and export validation all open theirs with it, so they measure and
check the engine exactly as it serves; where they differ (validation runs on CPU, the
benchmark on its ``--device`` with its own thread count) that is a ``SessionOptions`` field.

With IOBinding (``io_binding``: ``auto`` turns it on for CUDA only) the inputs are copied to the
device once and only the outputs asked for are bound and copied back, so no other output leaves
the device; on CPU a plain ``run`` is already copy-free, and ``on`` runs the same bound path there
(which is how the tests cover it without a GPU). What actually runs is read from
``session.get_providers()``: ``onnxruntime-gpu`` lists CUDA as available even where it then falls
back to CPU.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from modelrepo import GraphSpec, check_tensors

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
IoBinding = Literal["auto", "on", "off"]
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

_ORT_TYPES = {
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class SessionOptions:
    """How a session runs: where (``auto``: CUDA when ONNX Runtime can use it) and on how many
    threads (``intra_op_threads`` 0: one per physical core)."""

    device: Device = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    spin_wait: bool = False
    """Intra-op threads spin after each run waiting for the next one: lower latency when runs
    come back to back on cores of their own, CPU burnt otherwise (measured here, BERT at 64
    clients: ~2,200 against ~3,200 µs of server CPU per text without and with spinning)."""
    io_binding: IoBinding = "auto"
    """Bind inputs and the fetched outputs with IOBinding: ``auto`` on CUDA only."""

    def binds_io(self, device: str) -> bool:
        """Whether a session that ended up on ``device`` runs through IOBinding."""
        return self.io_binding == "on" or (self.io_binding == "auto" and device == "cuda")


CPU_FP32 = SessionOptions(device="cpu")
"""The server's settings on CPU: validation and evaluation compare against CPU fp32 numbers."""


def check_single_onnxruntime() -> None:
    """Refuse to run with both onnxruntime and onnxruntime-gpu installed (they clobber each
    other)."""
    installed = []
    for distribution in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(distribution)
            installed.append(distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        raise RuntimeError(
            "both onnxruntime and onnxruntime-gpu are installed; uninstall both and install "
            "exactly one (pip install '.[cpu]' or '.[gpu]')"
        )


def choose_providers(device: Device, available: Sequence[str]) -> list[str]:
    """The providers to ask for, in order, given what this onnxruntime build ``available``
    offers: CUDA first (with CPU for the operators it lacks) for ``cuda``, and for ``auto``
    where the build has it; asking for ``cuda`` from a CPU-only build is an error."""
    if device == "cpu":
        return [CPU_PROVIDER]
    if device == "cuda" and CUDA_PROVIDER not in available:
        raise RuntimeError(
            "device 'cuda' was asked for but this onnxruntime has no CUDA provider; install "
            "the gpu extra (onnxruntime-gpu) or use --device cpu"
        )
    if CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


def open_session(path: Path, options: SessionOptions, what: str = "") -> ort.InferenceSession:
    """An ONNX Runtime session for the graph at ``path``, configured as the server runs it.

    Operators run one after another (``inter_op_threads`` only matters to a parallel
    executor), with every graph optimization and warnings silenced. Asking for ``cuda`` and
    getting CPU is an error, never a silent fallback.
    """
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = options.intra_op_threads
    settings.inter_op_num_threads = options.inter_op_threads
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    settings.log_severity_level = 3
    if not options.spin_wait:
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = choose_providers(options.device, ort.get_available_providers())
    session = ort.InferenceSession(str(path), settings, providers=providers)
    if options.device == "cuda" and session_device(session) != "cuda":
        raise RuntimeError(
            f"{what or path}: CUDA was asked for but ONNX Runtime fell back to CPU (are the "
            "CUDA libraries installed?)"
        )
    return session


def session_device(session: ort.InferenceSession) -> str:
    """Where the session actually runs, ``cuda`` or ``cpu`` (``get_providers`` lists what it
    ended up with)."""
    return "cuda" if CUDA_PROVIDER in session.get_providers() else "cpu"


class GraphSession:
    """One ONNX graph loaded for serving and checked against its declared spec."""

    def __init__(self, path: Path, graph: GraphSpec, options: SessionOptions, what: str) -> None:
        self.session = open_session(path, options, what)
        self.device = session_device(self.session)
        self.bound = options.binds_io(self.device)
        check_tensors(graph.inputs, self._describe(self.session.get_inputs()), f"{what} inputs")
        check_tensors(graph.outputs, self._describe(self.session.get_outputs()), f"{what} outputs")
        log.info(
            "%s: loaded %s on %s%s",
            what,
            path.name,
            self.device,
            " (IOBinding)" if self.bound else "",
        )

    @staticmethod
    def _describe(
        values: Sequence[ort.NodeArg],
    ) -> list[tuple[str, str, Sequence[int | str | None]]]:
        return [
            (value.name, _ORT_TYPES.get(value.type, value.type), value.shape) for value in values
        ]

    def run(self, outputs: Sequence[str], inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph and return the named outputs as host arrays."""
        if not self.bound:
            results = self.session.run(list(outputs), dict(inputs))
            return [np.asarray(result) for result in results]
        binding = self.session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        return [np.asarray(value) for value in binding.copy_outputs_to_cpu()]
