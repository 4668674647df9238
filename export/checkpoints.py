"""Where a training command writes its source checkpoint before importing it."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_ROOT = Path("build/checkpoints")


def training_checkpoint_dir(args: argparse.Namespace, name: str) -> Path:
    """``--checkpoint-dir`` when given, else ``build/checkpoints/NAME``."""
    given: Path | None = getattr(args, "checkpoint_dir", None)
    return given or DEFAULT_ROOT / name
