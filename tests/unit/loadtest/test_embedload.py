"""The locustfile's helpers: texts, step loads, targets and failures, the per-second timeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import grpc
import pytest
from embedload.calls import GrpcStatusError, Target
from embedload.sweep import Sweep, parse_levels, parse_timespan
from embedload.texts import FALLBACK, TextSource, load_sentences, masked
from embedload.timeline import Timeline

from bench.loadtest import levels
from bench.loadtest.options import timespan
from bench.loadtest.texts import long_texts

SENTENCES = [f"the cook number {i} peeled a mushy apple ." for i in range(50)]


def source(repeat_ratio: float, unique: bool = True, seed: int = 1) -> TextSource:
    return TextSource(SENTENCES, repeat_ratio, 3, unique, random.Random(seed))


def test_fresh_texts_are_never_repeated_and_carry_a_suffix() -> None:
    texts = source(0.0)
    short = [texts.short() for _ in range(300)]
    assert len(set(short)) == 300
    assert all(text.split(" , case ")[0] in SENTENCES for text in short)


def test_the_repeat_ratio_is_the_share_of_texts_sent_before() -> None:
    texts = source(0.3)
    sent = [texts.short() for _ in range(4000)]
    seen: set[str] = set()
    repeats = 0
    for text in sent:
        repeats += text in seen
        seen.add(text)
    assert repeats / len(sent) == pytest.approx(0.3, abs=0.03)


def test_without_a_cache_fresh_texts_are_the_sentences_themselves() -> None:
    texts = source(0.0, unique=False)
    assert {texts.short() for _ in range(len(SENTENCES))} == set(SENTENCES)


def test_a_long_text_is_consecutive_sentences_as_the_report_counts_them() -> None:
    text = source(0.0, unique=False).long()
    start = SENTENCES.index(text.split(" . ")[0] + " .")
    expected = " ".join(SENTENCES[(start + i) % len(SENTENCES)] for i in range(3))
    assert text == expected
    assert long_texts(SENTENCES, 3, 2)[1] == " ".join(SENTENCES[3:6])


def test_a_masked_text_masks_one_content_word_the_same_way_each_time() -> None:
    text = "the surgeon removed a diseased kidney ."
    once = masked(text, "[MASK]")
    assert once == masked(text, "[MASK]")
    assert once.split().count("[MASK]") == 1
    assert once.split()[0] == "the" and once.split()[-1] == "."
    fills = source(0.0).fill_mask("<mask>")
    assert fills.count("<mask>") == 1


def test_texts_come_from_the_file_or_the_built_in_sentences(tmp_path: Path) -> None:
    assert load_sentences(None) == list(FALLBACK)
    path = tmp_path / "texts.txt"
    path.write_text("  first text \n\nsecond text\n")
    assert load_sentences(str(path)) == ["first text", "second text"]
    path.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no text"):
        load_sentences(str(path))
    with pytest.raises(ValueError, match="repeat ratio"):
        TextSource(SENTENCES, 1.5, 1, True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1m30s", 90), ("2.5s", 2.5)],
)
def test_time_spans_read_alike_in_the_locustfile_and_the_command(text: str, seconds: float) -> None:
    assert parse_timespan(text) == timespan(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5 minutes", "-3s", "1d"])
def test_bad_time_spans_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(text)


def test_a_sweep_holds_each_level_for_its_step_then_ends() -> None:
    assert parse_levels("1, 4,16") == (1, 4, 16)
    for bad in ("", "0,4", "a,b"):
        with pytest.raises(ValueError):
            parse_levels(bad)
    sweep = Sweep((1, 4, 16), 30.0)
    assert [sweep.level_at(t) for t in (0, 29.9, 30, 89.9, 90)] == [0, 0, 1, 2, None]
    assert sweep.total_s == 90


def test_targets_and_their_tls() -> None:
    assert Target.parse("127.0.0.1:50051") == Target("127.0.0.1:50051", False)
    assert Target.parse("grpc://embed:50051") == Target("embed:50051", False)
    assert Target.parse("grpcs://embed.example:443") == Target("embed.example:443", True)
    assert Target.parse("embed:443", tls=True).tls
    assert Target.parse("dns:///embed-headless:50051").address == "dns:///embed-headless:50051"
    for bad in ("embed", "http://embed:80/path", "embed:port"):
        with pytest.raises(ValueError):
            Target.parse(bad)


def test_a_failure_reads_as_its_status_name_as_locust_shows_it() -> None:
    error = GrpcStatusError(grpc.StatusCode.UNAVAILABLE, "failed to connect to 10.0.0.7:50051")
    assert repr(error) == str(error) == "UNAVAILABLE"


def test_the_timeline_merges_workers_and_reads_back_in_the_report(tmp_path: Path) -> None:
    """The locustfile's writer and bench.loadtest's reader agree on the file."""
    master, worker = Timeline(), Timeline()
    master.begin_level(2, 1000.2)
    worker.record(1000.5, 3.14159, failed=False)
    worker.record(1001.1, 12.5, failed=True)
    master.merge(json.loads(json.dumps(worker.drain())))
    assert worker.drain() == {}
    worker.record(1001.9, 12.5, failed=False)
    master.merge(worker.drain())
    master.level_ready(2, 1000.4)
    master.end(1002.0)
    path = tmp_path / "timeline.json"
    master.write(path)
    timeline = levels.read_timeline(path)
    assert {at: (s.count, s.failures) for at, s in timeline.seconds.items()} == {
        1000: (1, 0),
        1001: (2, 1),
    }
    assert timeline.seconds[1000].latencies == {3.14: 1}
    assert timeline.seconds[1001].latencies == {12.5: 2}
    assert timeline.levels == [levels.Level(2, 1000.2, 1000.4, 1002.0)]
