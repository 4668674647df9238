"""Run every console example of README.md against a running server (``make examples``).

Each ``python -m service.client ...`` command in the README's shell blocks runs with this
interpreter and ``--target`` put first, and is printed with its output, so a reader can see at a
glance that every example still gives a sensible answer on the default models. Commands that
need credentials a plain server does not ask for (TLS files, a token), or a model the server
does not serve (one the README imports from the reader's own files), are listed as skipped.
Exits 1 if an example fails.

    python -m bench.examples --target localhost:50051 [--readme README.md]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from service.client import EmbeddingClient

ROOT = Path(__file__).resolve().parents[1]
CLIENT = "service.client"
SHELL_FENCES = ("```sh", "```bash", "```console")
# options that only make sense against a server with TLS or tokens configured
CREDENTIAL_OPTIONS = frozenset(
    ("--tls-ca-file", "--tls-cert-file", "--tls-key-file", "--token", "--token-file")
)
TIMEOUT_S = 120.0
WIDTH = "120"  # columns for the client's tables when COLUMNS is unset (output is not a terminal)


@dataclass(frozen=True)
class Example:
    """One client command of the README: its arguments after ``python -m service.client``."""

    line: int  # 1-based line of README.md where the command starts
    arguments: tuple[str, ...]

    @property
    def needs_credentials(self) -> bool:
        return any(argument.split("=")[0] in CREDENTIAL_OPTIONS for argument in self.arguments)

    @property
    def model(self) -> str | None:
        """The model the command names (``--model NAME`` or ``--model=NAME``), if any."""
        for index, argument in enumerate(self.arguments):
            if argument.startswith("--model="):
                return argument.split("=", 1)[1]
            if argument == "--model" and index + 1 < len(self.arguments):
                return self.arguments[index + 1]
        return None


def _shell_commands(text: str) -> Iterator[tuple[int, str]]:
    """(line, command) of every command in the fenced shell blocks, continuations joined."""
    in_block = shell = False
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_block, shell = not in_block, not in_block and stripped in SHELL_FENCES
            pending = ""
            continue
        if not shell or not (pending or stripped):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield start, pending + stripped
        pending = ""


def readme_examples(text: str) -> list[Example]:
    """The ``python -m service.client`` commands of a README, in order."""
    examples = []
    for line, command in _shell_commands(text):
        words = shlex.split(command, comments=True)
        for index in range(len(words) - 1):
            if words[index] == "-m" and words[index + 1] == CLIENT:
                examples.append(Example(line, tuple(words[index + 2 :])))
                break
    return examples


def command_of(example: Example, target: str) -> list[str]:
    return [sys.executable, "-m", CLIENT, "--target", target, *example.arguments]


def served_models(target: str) -> set[str] | None:
    """The models ``target`` lists, or None if it cannot be asked (then nothing is skipped)."""
    try:
        with EmbeddingClient(target, timeout=10) as client:
            return {info.name for info in client.list_models().models}
    except grpc.RpcError:
        return None


def skip_reason(example: Example, served: set[str] | None) -> str | None:
    if example.needs_credentials:
        return "needs a server with TLS or tokens configured"
    if served is not None and example.model is not None and example.model not in served:
        return f"the server does not serve {example.model!r}; the README imports it first"
    return None


def run(examples: Sequence[Example], target: str, served: set[str] | None = None) -> int:
    """Run and print each example; the number that failed."""
    failed = skipped = 0
    for example in examples:
        shown = shlex.join(["python", "-m", CLIENT, "--target", target, *example.arguments])
        print(f"$ {shown}    # README.md:{example.line}", flush=True)
        reason = skip_reason(example, served)
        if reason is not None:
            skipped += 1
            print(f"(skipped: {reason})\n", flush=True)
            continue
        try:
            done = subprocess.run(
                command_of(example, target),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
                env={**os.environ, "COLUMNS": os.environ.get("COLUMNS", WIDTH)},
            )
        except subprocess.TimeoutExpired:
            failed += 1
            print(f"(no answer within {TIMEOUT_S:.0f} s)\n", flush=True)
            continue
        print((done.stdout + done.stderr).rstrip(), flush=True)
        if done.returncode != 0:
            failed += 1
            print(f"(exit status {done.returncode})", flush=True)
        print(flush=True)
    ran = len(examples) - skipped
    print(f"{len(examples)} examples: {ran - failed} answered, {failed} failed, {skipped} skipped")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m bench.examples",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--target", default="localhost:50051", help="the server, HOST:PORT")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    options = parser.parse_args(argv)
    examples = readme_examples(options.readme.read_text(encoding="utf-8"))
    if not examples:
        print(f"{options.readme} has no `python -m {CLIENT}` example", file=sys.stderr)
        return 1
    return 1 if run(examples, options.target, served_models(options.target)) else 0


if __name__ == "__main__":
    sys.exit(main())
