"""The one console every export command prints to (stderr), and what a finished export prints."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from modelrepo import read_validation, validation_table

console = Console(stderr=True)


def report_export(target: Path, started: float) -> Path:
    """Say where the version went and how long it took, then its validation table."""
    console.print(f"exported {target} in {time.perf_counter() - started:.0f} s")
    console.print(validation_table(read_validation(target), f"validation of {target}"))
    return target
