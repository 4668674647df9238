"""``python -m export defaults`` queues every missing default before it builds the first, keeps
the one being built at its training's step and measured time left, and leaves no marker behind
when a build fails. The architectures' own training takes minutes, so a stand-in trains each
model here (through the real progress and the real markers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from export import commands
from export.__main__ import parse
from export.progress import training_progress
from export.requests import Workspace
from modelrepo.building import BUILDING_FILE, building
from modelrepo.rebuild import BUILDING


@dataclass
class StandIn:
    """Records what a server would read of the markers while each model is built."""

    root: Path
    fail: str | None = None
    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    during: dict[str, str] = field(default_factory=dict)

    def train_default(self, workspace: Workspace, name: str) -> Path:
        self.seen[name] = building(self.root)
        with training_progress(name, 3, ["loss"], enabled=False) as progress:
            for _ in range(3):
                progress.advance(tokens=10, loss=1.0)
                self.during[name] = building(self.root)[name]
        if name == self.fail:
            raise RuntimeError(f"{name}: export failed")
        return self.root / name / "1"


def install(monkeypatch: pytest.MonkeyPatch, stand_in: StandIn) -> None:
    def architecture(name: str) -> Any:
        return stand_in

    monkeypatch.setattr(commands, "architecture", architecture)


def test_every_missing_default_is_queued_before_the_first_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = StandIn(tmp_path)
    install(monkeypatch, stand_in)
    parse(["defaults", "--models-dir", str(tmp_path), "--no-progress"])()
    assert stand_in.seen["word2vec"] == {
        "word2vec": f"being built: {BUILDING['word2vec']}",
        "bert": "queued: waits for word2vec (about 1 minute)",
        "elmo": "queued: waits for word2vec, bert (about 18 minutes)",
    }
    assert set(stand_in.seen["bert"]) == {"bert", "elmo"}
    assert stand_in.seen["bert"]["elmo"].startswith("queued: waits for bert (")
    assert stand_in.seen["elmo"] == {"elmo": f"being built: {BUILDING['elmo']}"}
    # The last step is always reported: trained, now exporting.
    assert (
        stand_in.during["bert"] == f"being built: {BUILDING['bert']}, trained (3 steps), exporting"
    )
    assert building(tmp_path) == {}


def test_a_present_default_is_not_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "word2vec" / "1").mkdir(parents=True)
    (tmp_path / "word2vec" / "1" / "spec.json").write_text("{}")
    stand_in = StandIn(tmp_path)
    install(monkeypatch, stand_in)
    parse(["defaults", "--models-dir", str(tmp_path), "--no-progress"])()
    assert list(stand_in.seen) == ["bert", "elmo"]
    assert stand_in.seen["bert"]["elmo"] == "queued: waits for bert (about 17 minutes)"


def test_a_failed_build_clears_the_queued_markers_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = StandIn(tmp_path, fail="bert")
    install(monkeypatch, stand_in)
    with pytest.raises(RuntimeError, match="bert: export failed"):
        parse(["defaults", "--models-dir", str(tmp_path), "--no-progress"])()
    assert "elmo" not in stand_in.seen
    assert building(tmp_path) == {}
    assert not any(tmp_path.rglob(BUILDING_FILE))


def test_the_progress_interval_is_an_option_of_every_command(tmp_path: Path) -> None:
    request = parse(["defaults", "--progress-interval-s", "5"]).request
    assert isinstance(request, commands.DefaultsRequest)
    assert request.workspace.progress_interval_s == 5.0
    assert parse(["defaults"]).request.workspace.progress_interval_s == 30.0  # type: ignore[attr-defined]
    for wrong in ("0", "-1", "soon", "inf"):
        with pytest.raises(SystemExit):
            parse(["defaults", "--progress-interval-s", wrong])
