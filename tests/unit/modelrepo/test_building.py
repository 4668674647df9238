"""Build markers: only live builders are reported, markers vanish with their block, and a reader
never sees half a marker. (Queued markers and progress: ``test_build_queue.py``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrepo import ModelRepository
from modelrepo.building import BUILDING_FILE, building, mark_building

ROOT = Path(__file__).resolve().parents[3]


def write_marker(root: Path, name: str, pid: int, started: float, what: str = "training") -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / BUILDING_FILE).write_text(
        json.dumps({"what": what, "pid": pid, "started": started})
    )


def exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_marker_is_reported_while_its_block_runs_and_removed_after(tmp_path: Path) -> None:
    with mark_building(tmp_path, "bert", "training BERT on the default corpus"):
        assert building(tmp_path) == {"bert": "being built: training BERT on the default corpus"}
        marker = json.loads((tmp_path / "bert" / BUILDING_FILE).read_text())
        assert marker["pid"] == os.getpid()
        assert abs(marker["started"] - time.time()) < 60
    assert building(tmp_path) == {}
    assert list((tmp_path / "bert").iterdir()) == []


def test_marker_of_an_exited_process_is_ignored(tmp_path: Path) -> None:
    write_marker(tmp_path, "elmo", exited_pid(), time.time())
    write_marker(tmp_path, "bert", os.getpid(), time.time(), what="training BERT")
    assert building(tmp_path) == {"bert": "being built: training BERT"}


def test_marker_whose_pid_now_belongs_to_a_younger_process_is_ignored(tmp_path: Path) -> None:
    # This process is alive, but it started long after a marker dated one day ago was written.
    write_marker(tmp_path, "bert", os.getpid(), time.time() - 86_400)
    assert building(tmp_path) == {}


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "[]",
        '{"what": "x"}',
        '{"what": 1, "pid": 1, "started": 0}',
        '{"what": "x", "pid": true, "started": 0}',
        '{"what": "x", "pid": -4, "started": 0}',
    ],
)
def test_malformed_markers_are_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / BUILDING_FILE).write_text(content)
    assert building(tmp_path) == {}


def test_missing_root_has_nothing_building(tmp_path: Path) -> None:
    assert building(tmp_path / "absent") == {}


@pytest.mark.parametrize("interruption", [RuntimeError("export failed"), KeyboardInterrupt()])
def test_marker_is_removed_when_the_build_fails_or_is_interrupted(
    tmp_path: Path, interruption: BaseException
) -> None:
    with (
        pytest.raises(type(interruption)),
        mark_building(tmp_path, "word2vec", "training word2vec"),
    ):
        assert building(tmp_path) == {"word2vec": "being built: training word2vec"}
        raise interruption
    assert not (tmp_path / "word2vec" / BUILDING_FILE).exists()
    assert building(tmp_path) == {}


def test_a_marker_replaced_by_another_builder_is_left_to_it(tmp_path: Path) -> None:
    with mark_building(tmp_path, "bert", "training BERT"):
        write_marker(tmp_path, "bert", os.getppid(), time.time() - 1, what="another build")
    assert json.loads((tmp_path / "bert" / BUILDING_FILE).read_text())["what"] == "another build"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_names_that_are_not_one_path_component_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="one path component"), mark_building(tmp_path, name, "x"):
        pass


def test_a_model_directory_holding_only_a_marker_is_not_a_model(tmp_path: Path) -> None:
    with mark_building(tmp_path, "bert", "training BERT"):
        repository = ModelRepository(tmp_path)
        assert repository.names() == []
        assert repository.versions("bert") == []
        assert repository.newest("bert") is None
        assert repository.next_version("bert") == 1


WRITER = """
import sys
from pathlib import Path
from modelrepo.building import mark_building
what = "x" * 400_000
for _ in range(int(sys.argv[2])):
    with mark_building(Path(sys.argv[1]), "bert", what):
        pass
"""


def test_a_reader_never_sees_a_partial_marker(tmp_path: Path) -> None:
    path = tmp_path / "bert" / BUILDING_FILE
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "300"], cwd=ROOT)
    seen = 0
    try:
        while writer.poll() is None:
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            marker = json.loads(text)  # a partial file would not parse
            assert len(marker["what"]) == 400_000
            assert marker["pid"] == writer.pid
            seen += 1
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0
    assert seen > 0, "the reader never caught a marker: the check proved nothing"
    assert sorted(p.name for p in (tmp_path / "bert").iterdir()) == []
