"""The machine the load ran on, in one line for the summary (no host name)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def describe() -> str:
    memory = _memory_gib()
    parts = [
        f"{os.cpu_count() or '?'} logical CPUs ({_cpu_model()})",
        f"{memory:.0f} GiB memory" if memory is not None else "",
        platform.system() + " " + platform.release(),
        "Python " + platform.python_version(),
    ]
    return ", ".join(part for part in parts if part)
