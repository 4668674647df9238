"""Where the benchmark runs its graphs, and the settings every benchmark server starts from:
one model, free ports, quiet logs, no result cache (the loads cycle a fixed set of sentences,
which a cache would answer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service.config import Settings
from service.runtime.session import Device, IoBinding, SessionOptions


@dataclass(frozen=True)
class Engine:
    """The device and threads of the servers and raw sessions of one bench run, so served and
    raw figures always come from the same engine (``--device``, ``--threads``,
    ``--io-binding``); the metrics section keeps its own (word2vec on one CPU thread, metrics
    on against off). ``python -m bench`` refuses ``cuda`` from a CPU-only onnxruntime before it
    builds anything; a CUDA build without a usable GPU fails at the first session."""

    device: Device = "cpu"
    threads: int = 0
    io_binding: IoBinding = "auto"

    @property
    def precision(self) -> Literal["fp16", "int8"]:
        """The reduced precision this device serves: int8 on CPU, fp16 on CUDA."""
        return "fp16" if self.device == "cuda" else "int8"

    def session_options(self) -> SessionOptions:
        return SessionOptions(
            device=self.device, intra_op_threads=self.threads, io_binding=self.io_binding
        )

    def settings(self) -> dict[str, Any]:
        """The server settings that put its sessions where ``session_options`` puts raw ones."""
        return {
            "device": self.device,
            "intra_op_threads": self.threads,
            "io_binding": self.io_binding,
        }


def bench_settings(models_dir: Path, name: str, engine: Engine, **overrides: Any) -> Settings:
    defaults: dict[str, Any] = {"cache": "off", "log_level": "warning"}
    return Settings(
        models_dir=models_dir,
        models=[name],
        port=0,
        metrics_port=0,
        **(defaults | engine.settings() | overrides),
    )
