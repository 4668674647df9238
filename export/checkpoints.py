"""Where a training command writes its source checkpoint before importing it."""

from __future__ import annotations

from pathlib import Path

from export.requests import Target

DEFAULT_ROOT = Path("build/checkpoints")


def training_checkpoint_dir(target: Target) -> Path:
    """``--checkpoint-dir`` when given, else ``build/checkpoints/NAME``."""
    return target.checkpoint_dir or DEFAULT_ROOT / target.name
