"""One builder's queue of markers: every planned model is queued from the start, the one being
built carries its progress and measured time left, a queued one says what it waits for and about
how long, and a failed or stopped build (or a dead builder) leaves no marker that counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrepo.building import BUILDING_FILE, Planned, building, queue_builds

ROOT = Path(__file__).resolve().parents[3]
PLAN = [
    Planned("word2vec", "training word2vec", 60.0),
    Planned("bert", "training BERT", 17 * 60.0),
    Planned("elmo", "training ELMo", 9 * 60.0),
]


def test_every_planned_model_is_queued_before_the_first_is_built(tmp_path: Path) -> None:
    with queue_builds(tmp_path, PLAN):
        assert building(tmp_path) == {
            "word2vec": "queued: next to be built",
            "bert": "queued: waits for word2vec (about 1 minute)",
            "elmo": "queued: waits for word2vec, bert (about 18 minutes)",
        }
    assert building(tmp_path) == {}
    assert all(not (tmp_path / plan.name / BUILDING_FILE).exists() for plan in PLAN)


def test_the_build_reports_its_step_and_measured_time_left(tmp_path: Path) -> None:
    with queue_builds(tmp_path, PLAN) as queue:
        with queue.build("word2vec"):
            pass  # published
        with queue.build("bert"):
            now = time.time()
            reasons = building(tmp_path, now)
            assert reasons == {
                "bert": "being built: training BERT",
                "elmo": "queued: waits for bert (about 17 minutes)",  # its estimate, no rate yet
            }
            queue.report("bert", 300, 2000, 1500.0)  # the rate measured: 25 minutes to go
            reasons = building(tmp_path, time.time())
            assert reasons["bert"] == (
                "being built: training BERT, step 300 of 2000, about 25 minutes of training left"
            )
            assert reasons["elmo"] == "queued: waits for bert (about 25 minutes)"
            # Read 10 minutes later, the time left has gone down with the clock.
            later = building(tmp_path, time.time() + 600)
            assert later["bert"].endswith("step 300 of 2000, about 15 minutes of training left")
            assert later["elmo"] == "queued: waits for bert (about 15 minutes)"
            queue.report("bert", 2000, 2000, 0.0)
            assert building(tmp_path)["bert"] == (
                "being built: training BERT, trained (2000 steps), exporting"
            )
            queue.report("bert", 1999, 2000, 20.0)
            assert building(tmp_path)["elmo"] == "queued: waits for bert (less than a minute)"
        assert set(building(tmp_path)) == {"elmo"}
    assert building(tmp_path) == {}


def test_a_wait_without_an_estimate_has_no_time(tmp_path: Path) -> None:
    plan = [Planned("first", "building first"), PLAN[2]]
    with queue_builds(tmp_path, plan) as queue, queue.build("first"):
        assert building(tmp_path)["elmo"] == "queued: waits for first"
        queue.report("first", 1, 10, 540.0)
        assert building(tmp_path)["elmo"] == "queued: waits for first (about 9 minutes)"


@pytest.mark.parametrize("interruption", [RuntimeError("export failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_build_clears_every_marker(
    tmp_path: Path, interruption: BaseException
) -> None:
    with pytest.raises(type(interruption)), queue_builds(tmp_path, PLAN) as queue:
        with queue.build("word2vec"):
            pass
        with queue.build("bert"):
            assert set(building(tmp_path)) == {"bert", "elmo"}
            raise interruption
    assert building(tmp_path) == {}
    assert not any(tmp_path.rglob(BUILDING_FILE))


BUILDER = """
import sys, time
from pathlib import Path
from modelrepo.building import Planned, queue_builds
with queue_builds(Path(sys.argv[1]), [Planned("a", "building a"), Planned("b", "building b")]) as q:
    with q.build("a"):
        q.report("a", 1, 10, 10.0)
        print("building", flush=True)
        time.sleep(600)
"""


def start_builder(root: Path) -> subprocess.Popen[str]:
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert builder.stdout is not None and builder.stdout.readline() == "building\n"
    return builder


def test_a_builder_stopped_by_sigint_clears_its_queued_markers_too(tmp_path: Path) -> None:
    builder = start_builder(tmp_path)
    try:
        assert building(tmp_path) == {
            "a": "being built: building a, step 1 of 10, less than a minute of training left",
            "b": "queued: waits for a (less than a minute)",
        }
        builder.send_signal(signal.SIGINT)  # what `make serve` sends its builder on Ctrl-C
        assert builder.wait(30) != 0
    finally:
        builder.kill()
        builder.wait()
    assert building(tmp_path) == {}
    assert not any(tmp_path.rglob(BUILDING_FILE))


def test_markers_of_a_killed_builder_are_ignored(tmp_path: Path) -> None:
    builder = start_builder(tmp_path)
    builder.kill()  # no cleanup runs: its markers stay, and count for nothing
    builder.wait()
    assert (tmp_path / "b" / BUILDING_FILE).exists()
    assert building(tmp_path) == {}


@pytest.mark.parametrize(
    "extra",
    [
        {"queued": "yes"},
        {"position": 1.5},
        {"estimate_s": "soon"},
        {"progress": [1, 2]},
        {"progress": {"step": 1, "steps": 2, "at": "now"}},
        {"progress": {"step": 1, "steps": 2, "remaining_s": "1", "at": 0}},
    ],
)
def test_malformed_queue_fields_are_ignored(tmp_path: Path, extra: dict[str, object]) -> None:
    (tmp_path / "bert").mkdir()
    marker = {"what": "x", "pid": os.getpid(), "started": time.time(), **extra}
    (tmp_path / "bert" / BUILDING_FILE).write_text(json.dumps(marker))
    assert building(tmp_path) == {}


def test_a_plan_with_a_bad_name_writes_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="one path component"),
        queue_builds(tmp_path, [PLAN[0], Planned("a/b", "x")]),
    ):
        pass
    assert not any(tmp_path.rglob(BUILDING_FILE))
