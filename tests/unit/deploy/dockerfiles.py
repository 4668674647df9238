"""Reading the Dockerfiles, ``.dockerignore`` and the hashed locks of ``deploy/`` offline.

No Docker daemon runs on the project's machines, so images are never built here; these
helpers let the tests check what a build would do: which files each ``COPY`` takes from the
context, which the context lets in, which lock each image installs and what it pins.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = {"cpu": REPO / "deploy" / "Dockerfile", "gpu": REPO / "deploy" / "Dockerfile.gpu"}
LOCKS = {
    "cpu": REPO / "deploy" / "requirements-serve.txt",
    "gpu": REPO / "deploy" / "requirements-serve-gpu.txt",
}
BUILD_LOCK = REPO / "deploy" / "requirements-build.txt"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


def instructions(path: Path) -> list[Instruction]:
    """Every instruction, continuation lines joined, comments dropped, with its stage's name."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    found = []
    stage = ""
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)$", arguments, re.IGNORECASE)
            stage = match.group(1) if match else ""
        found.append(Instruction(stage, keyword, arguments.strip()))
    return found


def copy_sources(path: Path) -> list[str]:
    """The build-context paths the ``COPY`` instructions take (not ``--from`` a stage)."""
    sources = []
    for instruction in instructions(path):
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        words = [w for w in instruction.arguments.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


# -- .dockerignore ----------------------------------------------------------------------------
def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus ``**`` for any number of folders)."""
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def context_includes(relative: str, dockerignore: Path = DOCKERIGNORE) -> bool:
    """Whether the build context holds ``relative``: the last pattern matching it or one of
    its parent folders decides, ``!`` patterns letting it in again."""
    included = True
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in dockerignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        regex = _pattern(line.removeprefix("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = exception
    return included


# -- locks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]


def pins(lock: Path) -> dict[str, Pin]:
    """The pinned requirements of a ``pip-compile --generate-hashes`` file, by canonical name."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    found: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, *options = line.split(" --hash=")
        name, _, version = requirement.strip().partition("==")
        assert version, f"{lock.name}: {requirement!r} is not pinned with =="
        key = canonicalize_name(name)
        found[key] = Pin(key, version.strip(), tuple(o.strip() for o in options))
    return found


def pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text())


def requirements(extra: str | None = None) -> list[Requirement]:
    """pyproject's core dependencies, or one optional extra's."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(text) for text in listed]


def build_requirements() -> list[Requirement]:
    system = pyproject()["build-system"]
    assert isinstance(system, dict)
    return [Requirement(text) for text in system["requires"]]
