"""``python -m service.launch``: serve at once, and build the missing default models meanwhile.

``make serve`` runs this. It starts two processes side by side, each in a process group of its
own, with this terminal's output:

- the server, ``python -m service`` with every option not listed below; run with
  ``--model-control poll`` it serves whatever the repository holds now and picks up each
  version published later;
- the builder, by default ``python -m export defaults``, which trains and publishes whichever
  default models are missing (``--models-dir`` is passed on as the server reads it). It is
  started a moment before the server and queues every model it will build first thing
  (``modelrepo.building``), so the server reports each as loading from its first answer.

Ctrl-C, SIGTERM or SIGHUP reach this process alone and are forwarded exactly once: the server
drains and stops, the builder gets SIGINT (so its cleanup runs). Each is killed if it outlives
``--stop-timeout-s``. A builder that fails is reported and the server goes on serving; a server
that exits takes the builder down with it, and its exit status becomes this one's.

Why here: this is how the server is started in development, and it needs the server's settings
(where the repository is). It starts the exporter as a command, never imports it, so the
serving layer stays free of the training stack. Its own options (``--builder``,
``--no-builder``, ``--stop-timeout-s``) say what to start, not how to serve, so they are not
server ``Settings``; the server reads its settings itself, from the options passed on.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from modelrepo.building import building
from service.config import Settings

PROG = "python -m service.launch"
DEFAULT_BUILDER = f"{shlex.quote(sys.executable)} -m export defaults"
POLL_S = 0.1
BUILDER_STOP_S = 10.0  # a builder interrupted mid-step gets this long to clean up
_PR_SET_PDEATHSIG = 1


QUEUE_WAIT_S = 15.0
"""How long the server's start waits for the builder to queue its models (it imports its
training stack first: a few seconds)."""


@dataclass(frozen=True)
class LaunchConfig:
    """What to start: the server's command line and the builder's (None: serve only)."""

    server_command: tuple[str, ...]
    builder_command: tuple[str, ...] | None
    stop_timeout_s: float = 60.0
    models_dir: Path | None = None
    """Where the builder queues its markers: the server starts once they are there."""


def models_dir_of(server_args: Sequence[str]) -> Path:
    """The repository the server will read: ``--models-dir``, else EMBED_MODELS_DIR, else the
    default of ``Settings``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--models-dir", type=Path)
    given: Path | None = parser.parse_known_args(list(server_args))[0].models_dir
    if given is not None:
        return given
    from_env = os.environ.get("EMBED_MODELS_DIR")
    if from_env:
        return Path(from_env)
    default: Path = Settings.model_fields["models_dir"].default
    return default


def parse_args(argv: Sequence[str]) -> LaunchConfig:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Start the server and, beside it, the build of the missing default models. "
        "Every other option goes to the server (see python -m service --help).",
        allow_abbrev=False,
    )
    builder = parser.add_mutually_exclusive_group()
    builder.add_argument(
        "--builder",
        default=DEFAULT_BUILDER,
        metavar="COMMAND",
        help="the build command, run as COMMAND --models-dir DIR (default: %(default)s)",
    )
    builder.add_argument("--no-builder", action="store_true", help="only serve; build nothing")
    parser.add_argument(
        "--stop-timeout-s",
        type=float,
        default=60.0,
        help="after a stop signal, how long either process may take before it is killed",
    )
    known, server_args = parser.parse_known_args(list(argv))
    if server_args[:1] == ["--"]:
        server_args = server_args[1:]
    build: tuple[str, ...] | None = None
    models_dir = models_dir_of(server_args)
    if not known.no_builder:
        build = (*shlex.split(known.builder), "--models-dir", str(models_dir))
    return LaunchConfig(
        server_command=(sys.executable, "-m", "service", *server_args),
        builder_command=build,
        stop_timeout_s=known.stop_timeout_s,
        models_dir=models_dir,
    )


def _die_with(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: SIGTERM it when this launcher dies, even by SIGKILL, so
    a child in a process group of its own is never left behind (Linux; elsewhere a no-op)."""

    def arrange() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os._exit(1)

    return arrange


def exit_status(returncode: int) -> int:
    """A shell's view of a child's end: its code, or 128 + the signal that killed it."""
    return 128 - returncode if returncode < 0 else returncode


class Launcher:
    """Runs the server and the builder until the server ends; see the module docstring."""

    def __init__(self, config: LaunchConfig, out: TextIO = sys.stderr) -> None:
        self.config = config
        self.out = out
        self.server: subprocess.Popen[bytes] | None = None
        self.builder: subprocess.Popen[bytes] | None = None
        self.stop_requested_at: float | None = None
        self.stop_signal: signal.Signals | None = None
        self.builder_reported = False
        self.builder_signalled = False

    def say(self, message: str) -> None:
        print(f"{PROG}: {message}", file=self.out, flush=True)

    def _spawn(self, command: Sequence[str]) -> subprocess.Popen[bytes]:
        # preexec_fn is safe here: the launcher runs no threads of its own.
        arrange = _die_with(os.getpid())
        return subprocess.Popen(list(command), process_group=0, preexec_fn=arrange)  # noqa: PLW1509

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Record and forward only: printing here could interrupt a print of the main loop."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            self.stop_signal = signal.Signals(signum)
        self._forward(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    def _forward(self, server_signal: int) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(server_signal)
        if self.builder is not None and self.builder.poll() is None:
            self.builder.send_signal(signal.SIGINT)
            self.builder_signalled = True

    def _await_queue(self) -> None:
        """Until the builder's markers are written, it ends, a stop is asked or QUEUE_WAIT_S."""
        root = self.config.models_dir
        deadline = time.monotonic() + QUEUE_WAIT_S
        while root is not None and time.monotonic() < deadline and self.stop_signal is None:
            if self.builder is None or self.builder.poll() is not None or building(root):
                return
            time.sleep(0.05)

    def run(self) -> int:
        """Start both, wait for the server to end, stop the builder; the server's exit status."""
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            return self._run()
        finally:
            for process in (self.server, self.builder):
                _kill(process)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self) -> int:
        config = self.config
        # The builder first, and the server once the builder has queued what it will build (or
        # has ended, having nothing to build): a queued model is then UNAVAILABLE from the
        # server's first answer, never NOT_FOUND.
        if config.builder_command is not None and self.stop_requested_at is None:
            self.builder = self._spawn(config.builder_command)
            self._await_queue()
        self.server = self._spawn(config.server_command)
        self.say(f"server (pid {self.server.pid}): {shlex.join(config.server_command)}")
        if self.builder is not None:
            self.say(
                f"building missing default models (pid {self.builder.pid}): "
                f"{shlex.join(config.builder_command or ())}; each is served once it is published"
            )
        if self.stop_signal is not None:  # it came while the server was being started
            self._forward(signal.SIGINT if self.stop_signal == signal.SIGINT else signal.SIGTERM)
        announced = killed = False
        while self.server.poll() is None:
            self._check_builder()
            if self.stop_signal is not None and not announced:
                self.say(f"{self.stop_signal.name}: stopping the server and the builder")
                announced = True
            if not killed and self._past(self.stop_requested_at, config.stop_timeout_s):
                self.say(f"the server is still running after {config.stop_timeout_s} s: killed")
                self.server.kill()
                killed = True
            time.sleep(POLL_S)
        status = exit_status(self.server.returncode)
        if self.stop_requested_at is None:
            self.say(f"the server exited with status {status}; stopping the builder")
            self.stop_requested_at = time.monotonic()
        self._stop_builder()
        return status

    def _check_builder(self) -> None:
        builder = self.builder
        if builder is None or self.builder_reported or builder.poll() is None:
            return
        self.builder_reported = True
        if self.stop_requested_at is not None:
            return  # interrupted on purpose, not a failure
        if builder.returncode == 0:
            self.say("every default model is built")
        else:
            self.say(
                f"the build failed with status {exit_status(builder.returncode)} (see above); the "
                "server goes on serving what is published; rerun it with `make defaults`"
            )

    def _stop_builder(self) -> None:
        """SIGINT it (unless the stop signal already did: a second one could cut its cleanup
        short), then give it until ``BUILDER_STOP_S`` after the stop began."""
        builder, started = self.builder, self.stop_requested_at
        if builder is None or builder.poll() is not None or started is None:
            return
        if not self.builder_signalled:
            builder.send_signal(signal.SIGINT)
            self.builder_signalled = True
        limit = min(BUILDER_STOP_S, self.config.stop_timeout_s)
        try:
            builder.wait(max(1.0, started + limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.say("the builder did not stop in time: killed")
            builder.kill()
            builder.wait()

    @staticmethod
    def _past(since: float | None, seconds: float) -> bool:
        return since is not None and time.monotonic() - since > seconds


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    """Last resort on the way out (an error in the launcher itself): no child outlives it."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    return Launcher(config).run()


if __name__ == "__main__":
    sys.exit(main())
