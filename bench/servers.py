"""The settings every benchmark server starts from: one model, free ports, quiet logs, no
result cache (the loads cycle a fixed set of sentences, which a cache would answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import Settings


def bench_settings(models_dir: Path, name: str, threads: int, **overrides: Any) -> Settings:
    defaults: dict[str, Any] = {"cache": "off", "log_level": "warning"}
    return Settings(
        models_dir=models_dir,
        models=[name],
        port=0,
        metrics_port=0,
        intra_op_threads=threads,
        **(defaults | overrides),
    )
