"""Child processes that are always ended with everything they started.

Each child runs in a session (and process group) of its own, so a signal to the group reaches
what it forked too (Locust's ``--processes`` workers), and a Ctrl-C in the terminal reaches
only this process, which then ends its children in order. ``stop`` asks politely (SIGTERM),
waits a bounded time, then kills the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived; raised in the main thread so ``finally`` blocks run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into ``Interrupted`` (SIGINT already raises KeyboardInterrupt)."""

    def handler(signum: int, _: FrameType | None) -> None:
        raise Interrupted(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


# prctl(2), resolved here so the child runs no import between fork and exec.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before ``exec``: Linux kills it if this process dies first (even by
    SIGKILL, when no ``finally`` runs), so a killed run never leaves a server behind."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildGroup:
    """``command`` with its output in ``log``, in a process group of its own."""

    def __init__(
        self,
        command: Sequence[str],
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.command = list(command)
        self.log = log
        self._output: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one C call, no Python locks
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, or ``None`` if it is still running after ``timeout_s``."""
        try:
            return self.process.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM to the group, up to ``grace_s`` to exit, then SIGKILL; the exit status."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(grace_s) is None:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        # Whatever the leader left in its group (workers of a crashed master) goes too.
        self._signal(signal.SIGKILL)
        self._output.close()
        return int(self.process.returncode)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def tail(self, lines: int = 20) -> str:
        self._output.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
