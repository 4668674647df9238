"""Paths of the load test, the locustfile loaded as Locust loads it, ``embedload`` on the
import path, and the processes a run leaves.

``embedload`` (``deploy/loadtest/embedload``) is imported the way the locustfile imports it:
from the locustfile's folder, which Locust puts on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOADTEST = REPO / "deploy" / "loadtest"
LOCUSTFILE = LOADTEST / "locustfile.py"
LOAD = """
import json, sys
from locust.argument_parser import get_parser
from locust.util.load_locustfile import load_locustfile
users, shapes = load_locustfile(sys.argv[2])
loaded = sorted({name.split(".")[0] for name in sys.modules})
flags = sorted(flag for action in get_parser()._actions for flag in action.option_strings)
print(json.dumps({"users": sorted(users), "shapes": [type(s).__name__ for s in shapes],
                  "modules": loaded, "flags": flags}))
"""
"""Locust's own loader in a fresh process: the User and shape classes, every top-level module
the process holds afterwards, and every command-line flag (Locust's and the locustfile's)."""


def load_locustfile(*argv: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """What Locust finds in the locustfile, with no LOCUST_* variable but those in ``env``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    done = subprocess.run(
        [sys.executable, "-c", LOAD, "-f", str(LOCUSTFILE), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | (env or {}),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def import_embedload() -> None:
    if str(LOADTEST) not in sys.path:
        sys.path.insert(0, str(LOADTEST))


def processes_with(marker: str) -> dict[int, str]:
    """Live processes (not zombies, not this one) whose command line contains ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in command and state != "Z":
            found[int(entry.name)] = command.strip()
    return found


def wait_for_processes(marker: str, present: bool, timeout_s: float) -> dict[int, str]:
    """Poll until some process with ``marker`` runs (``present``) or none does; what is left."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.1) + 1):
        found = processes_with(marker)
        if bool(found) == present or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
    return processes_with(marker)
