"""Markers for models being built: ``<root>/<name>/.building``.

A builder (``python -m export defaults``) writes one while it trains and exports a model, so a
server started on the same repository can say *what* is on its way ("training BERT ...")
instead of only "not found". The marker records the builder's pid and start time: a builder
that was killed leaves a marker behind, and ``building()`` ignores it once that process is gone
(or its pid now belongs to a younger process), so nothing has to clean up after a crash.

Only the standard library: the server reads these files and installs no training stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUILDING_FILE = ".building"

# A pid's process must have started no later than this long after the marker says it did
# (clock ticks and float time round differently; the marker is written after the process began).
_START_SLACK_S = 2.0


def building(root: Path) -> dict[str, str]:
    """Model name -> what is being built, for every live marker under ``root``.

    A marker is live when its pid names a running process on this host that is not younger than
    the marker. Unreadable, partial or stale markers are skipped: they never block serving.
    """
    if not root.is_dir():
        return {}
    found: dict[str, str] = {}
    for directory in sorted(root.iterdir()):
        marker = _read_marker(directory / BUILDING_FILE)
        if marker is not None and _is_live(marker[1], marker[2]):
            found[directory.name] = marker[0]
    return found


@contextmanager
def mark_building(root: Path, name: str, what: str) -> Iterator[None]:
    """Mark ``<root>/<name>`` as being built (``what`` says by what) for the ``with`` block.

    The marker appears atomically (written to a temporary file, then renamed), so a reader sees
    either no marker or a whole one; it is removed when the block ends, also on an error or
    Ctrl-C. It is only removed if it is still this process's own.
    """
    if not name or name in (".", "..") or Path(name).name != name:
        raise ValueError(f"model name {name!r} must be one path component")
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / BUILDING_FILE
    pid = os.getpid()
    _write_atomically(path, {"what": what, "pid": pid, "started": time.time()})
    try:
        yield
    finally:
        marker = _read_marker(path)
        if marker is not None and marker[1] == pid:
            path.unlink(missing_ok=True)


def _write_atomically(path: Path, content: dict[str, object]) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f"{BUILDING_FILE}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(content, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _read_marker(path: Path) -> tuple[str, int, float] | None:
    """(what, pid, started) of a marker, or None when it is missing or malformed."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    what, pid, started = raw.get("what"), raw.get("pid"), raw.get("started")
    if not isinstance(what, str) or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not isinstance(started, int | float) or isinstance(started, bool):
        return None
    return what, pid, float(started)


def _is_live(pid: int, started: float) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OverflowError:
        return False
    process_start = _process_start_time(pid)
    return process_start is None or process_start <= started + _START_SLACK_S


def _process_start_time(pid: int) -> float | None:
    """Unix time a process started, from /proc (Linux); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        # Field 22 (starttime, clock ticks after boot) counted after the ")" closing the name.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
