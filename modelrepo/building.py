"""Markers for models on their way: ``<root>/<name>/.building``.

A builder (``python -m export defaults``) writes one for every model it will build before it
builds the first, so a server started on the same repository can say of each what is coming and
when, instead of "not found": a model that waits its turn is *queued* behind the ones before it,
the one being built says at which step it is and how long it has left, as the builder measured
it. A marker records the builder's pid and start time: a builder that was killed leaves markers
behind, and ``building()`` ignores them once that process is gone (or its pid now belongs to a
younger process), so nothing has to clean up after a crash. A build that fails or is stopped
removes its markers, queued ones too.

Only the standard library: the server reads these files and installs no training stack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

BUILDING_FILE = ".building"

# A pid's process must have started no later than this long after the marker says it did
# (clock ticks and float time round differently; the marker is written after the process began).
_START_SLACK_S = 2.0


@dataclass(frozen=True)
class Planned:
    """A model a builder will build: its name, what it does, and about how long that takes
    (``None``: unknown; a queued model's wait is then given without a time)."""

    name: str
    what: str
    estimate_s: float | None = None


@dataclass(frozen=True)
class BuildProgress:
    """Where a build stands, as its builder measured it at ``at`` (Unix time)."""

    step: int
    steps: int
    remaining_s: float | None
    at: float


@dataclass(frozen=True)
class Marker:
    """One marker's content; ``position`` orders one builder's models."""

    name: str
    what: str
    pid: int
    started: float
    position: int = 0
    queued: bool = False
    estimate_s: float | None = None
    progress: BuildProgress | None = None


def building(root: Path, now: float | None = None) -> dict[str, str]:
    """Model name -> why it is not served yet, for every live marker under ``root``:
    ``being built: WHAT[, step S of N, about M minutes of training left]`` or
    ``queued: waits for A, B (about M minutes)``.

    A marker is live when its pid names a running process on this host that is not younger than
    the marker. Unreadable, partial or stale markers are skipped: they never block serving.
    """
    markers = live_markers(root)
    moment = time.time() if now is None else now
    return {marker.name: _reason(marker, markers, moment) for marker in markers}


def live_markers(root: Path) -> list[Marker]:
    """Every live marker under ``root``, by model name."""
    if not root.is_dir():
        return []
    found: list[Marker] = []
    for directory in sorted(root.iterdir()):
        marker = _read_marker(directory / BUILDING_FILE)
        if marker is not None and _is_live(marker.pid, marker.started):
            found.append(marker)
    return found


class BuildQueue:
    """One builder's markers: every planned model is queued at once, then built in turn.

    Use it through ``queue_builds``, which removes whatever markers are left when the builder
    stops, however it stops."""

    def __init__(self, root: Path, planned: Sequence[Planned]) -> None:
        for plan in planned:
            _check_name(plan.name)
        self.root = root
        self.pid = os.getpid()
        self._markers: dict[str, Marker] = {}
        self._planned = planned

    def queue_all(self) -> None:
        """Write a queued marker for every planned model (before the first is built)."""
        started = time.time()
        for position, plan in enumerate(self._planned):
            self._write(
                Marker(plan.name, plan.what, self.pid, started, position, True, plan.estimate_s)
            )

    @contextmanager
    def build(self, name: str) -> Iterator[None]:
        """``name`` is being built for the ``with`` block; its marker goes when the block ends
        (published, failed or interrupted alike)."""
        marker = self._markers[name]
        self._write(replace(marker, queued=False, started=time.time(), progress=None))
        try:
            yield
        finally:
            self._remove(name)

    def report(self, name: str, step: int, steps: int, remaining_s: float | None) -> None:
        """The build of ``name`` is at ``step`` of ``steps``, ``remaining_s`` to go (measured)."""
        marker = self._markers.get(name)
        if marker is None or marker.queued:
            return
        progress = BuildProgress(step, steps, remaining_s, time.time())
        try:
            self._write(replace(marker, progress=progress))
        except OSError as error:  # a progress note is never worth a build (disk full, ...)
            log.warning("could not update the build marker of %s: %s", name, error)

    def clear(self) -> None:
        """Remove every marker of this queue still there."""
        for name in list(self._markers):
            self._remove(name)

    def _write(self, marker: Marker) -> None:
        directory = self.root / marker.name
        directory.mkdir(parents=True, exist_ok=True)
        self._markers[marker.name] = marker
        _write_atomically(directory / BUILDING_FILE, _content(marker))

    def _remove(self, name: str) -> None:
        """Only while the file is still this process's own: another builder's stays."""
        self._markers.pop(name, None)
        path = self.root / name / BUILDING_FILE
        marker = _read_marker(path)
        if marker is not None and marker.pid == self.pid:
            path.unlink(missing_ok=True)


@contextmanager
def queue_builds(root: Path, planned: Sequence[Planned]) -> Iterator[BuildQueue]:
    """Queue every planned model (atomically written markers: a reader sees a whole one or
    none) for the ``with`` block; every marker left is removed when it ends, also on an error
    or Ctrl-C."""
    queue = BuildQueue(root, planned)
    try:
        queue.queue_all()  # inside: markers written before a failed write are removed too
        yield queue
    finally:
        queue.clear()


@contextmanager
def mark_building(root: Path, name: str, what: str) -> Iterator[None]:
    """Mark ``<root>/<name>`` as being built (``what`` says by what) for the ``with`` block: a
    queue of one model."""
    with queue_builds(root, [Planned(name, what)]) as queue, queue.build(name):
        yield


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or Path(name).name != name:
        raise ValueError(f"model name {name!r} must be one path component")


def _reason(marker: Marker, markers: Sequence[Marker], now: float) -> str:
    if not marker.queued:
        progress = marker.progress
        if progress is None:
            return f"being built: {marker.what}"
        if progress.step >= progress.steps:
            return f"being built: {marker.what}, trained ({progress.steps} steps), exporting"
        where = f"being built: {marker.what}, step {progress.step} of {progress.steps}"
        left = _left(marker, now)
        # the rate measures training; the export after it is not in this figure
        return where if left is None else f"{where}, {_duration(left)} of training left"
    ahead = sorted(
        (
            other
            for other in markers
            if other.pid == marker.pid and other.position < marker.position
        ),
        key=lambda other: other.position,
    )
    if not ahead:
        return "queued: next to be built"
    waits = f"queued: waits for {', '.join(other.name for other in ahead)}"
    lefts = [_left(other, now) for other in ahead]
    known = [left for left in lefts if left is not None]
    if len(known) < len(lefts):
        return waits
    return f"{waits} ({_duration(sum(known))})"


def _left(marker: Marker, now: float) -> float | None:
    """Seconds until ``marker``'s build ends: measured while it is built, else estimated."""
    if marker.queued:
        return marker.estimate_s
    progress = marker.progress
    if progress is not None and progress.remaining_s is not None:
        return max(0.0, progress.remaining_s - (now - progress.at))
    if marker.estimate_s is not None:
        return max(0.0, marker.estimate_s - (now - marker.started))
    return None


def _duration(seconds: float) -> str:
    minutes = math.floor(seconds / 60 + 0.5)
    if minutes == 0:
        return "less than a minute"
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


def _content(marker: Marker) -> dict[str, object]:
    progress = marker.progress
    return {
        "what": marker.what,
        "pid": marker.pid,
        "started": marker.started,
        "position": marker.position,
        "queued": marker.queued,
        "estimate_s": marker.estimate_s,
        "progress": None
        if progress is None
        else {
            "step": progress.step,
            "steps": progress.steps,
            "remaining_s": progress.remaining_s,
            "at": progress.at,
        },
    }


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


def _read_marker(path: Path) -> Marker | None:
    """A marker's content, or None when it is missing or malformed. The fields after
    ``started`` are optional (a marker of one model being built needs none of them)."""
    try:
        raw = json.loads(path.read_text())
        return _parse_marker(path.parent.name, raw)
    except (OSError, ValueError, TypeError):
        return None


def _parse_marker(name: str, raw: object) -> Marker:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    pid = _int(raw.get("pid"))
    if pid <= 0:
        raise ValueError("not a pid")
    estimate = raw.get("estimate_s")
    queued = raw.get("queued", False)
    if not isinstance(queued, bool):
        raise ValueError("queued is not a boolean")
    return Marker(
        name,
        _str(raw.get("what")),
        pid,
        _number(raw.get("started")),
        _int(raw.get("position", 0)),
        queued,
        None if estimate is None else _number(estimate),
        _parse_progress(raw.get("progress")),
    )


def _parse_progress(raw: object) -> BuildProgress | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("progress is not an object")
    remaining = raw.get("remaining_s")
    return BuildProgress(
        _int(raw.get("step")),
        _int(raw.get("steps")),
        None if remaining is None else _number(remaining),
        _number(raw.get("at")),
    )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _number(value: object) -> float:
    """A finite number (JSON also reads 1e309 and Infinity, which no duration can be)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


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
