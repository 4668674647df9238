"""FillMask texts fitted to a token limit, calls refused as invalid kept apart from the server's
failures, and the SLO verdict at a limit."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from embedload.texts import TextSource
from embedload.timeline import Timeline

from bench.loadtest import levels, slo
from bench.loadtest.levels import Level, RunStats, Second
from bench.loadtest.summary import verdict

SENTENCES = ["short one .", "a much longer sentence than the others here .", "short two ."]


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word, plus [CLS] and [SEP]."""
    return len(text.split()) + 2


def test_fill_mask_sends_only_sentences_whose_masked_form_and_suffix_fit() -> None:
    texts = TextSource(SENTENCES, 0.0, 1, True, random.Random(0))
    templates = [texts.mask_template(sentence, "[MASK]") for sentence in SENTENCES]
    assert all(template.endswith(" .") and "[MASK]" in template for template in templates)
    limit = words(templates[0]) + 2  # room for a one-digit count and a word-start piece
    assert texts.fit_masks([words(t) for t in templates], limit) == 2
    sent = [texts.fill_mask("[MASK]") for _ in range(9)]
    assert all(words(text) <= limit for text in sent), sent
    assert not any("longer" in text for text in sent), sent
    # the count outgrew every text's room: the shortest is sent (a refusal of it is counted as
    # the load's own mistake, apart from the server's errors), never an exception in the task
    late = [texts.fill_mask("[MASK]") for _ in range(5)]
    shortest = min((t for t in templates if "longer" not in t), key=words)
    assert late[-1].startswith(shortest.removesuffix(" .")), late


def test_without_a_fit_every_sentence_is_used_and_counts_must_match() -> None:
    texts = TextSource(SENTENCES, 0.0, 1, False, random.Random(0))
    assert any("longer" in texts.fill_mask("[MASK]") for _ in range(6))
    with pytest.raises(ValueError, match="2 token counts for 3 sentences"):
        texts.fit_masks([5, 5], 64)
    assert texts.fit_masks([1, 1, 1], 1) == 3, "no suffix: nothing but the text counts"


def test_calls_refused_as_invalid_are_not_the_servers_failures(tmp_path: Path) -> None:
    master, worker = Timeline(), Timeline()
    master.begin_level(1, 10.0)
    worker.record(10.2, 1.0, failed=True, invalid=True)
    worker.record(10.3, 1.0, failed=True)
    for _ in range(8):
        worker.record(10.4, 1.0, failed=False)
    master.merge(json.loads(json.dumps(worker.drain())))
    master.end(11.0)
    master.write(tmp_path / "timeline.json")
    timeline = levels.read_timeline(tmp_path / "timeline.json")
    assert (timeline.seconds[10].failures, timeline.seconds[10].invalid) == (2, 1)
    run = levels.run_stats(timeline)
    assert (run.requests, run.failures, run.invalid) == (10, 2, 1)
    assert run.failure_ratio == 1 / 9, "one server failure among the nine valid calls"
    (goal,) = slo.objectives(run, None, 0.5, None)
    assert goal.measured == 1 / 9
    assert verdict([goal], run.invalid).startswith("**INVALID LOAD**: 1 calls were refused")
    every = Timeline()
    every.record(5.0, 1.0, failed=True, invalid=True)
    (nothing,) = slo.objectives(levels.run_stats(_read(every, tmp_path)), None, 0.5, None)
    assert nothing.measured is None and not nothing.met


def _read(timeline: Timeline, folder: Path) -> levels.Timeline:
    timeline.write(folder / "every.json")
    return levels.read_timeline(folder / "every.json")


def run_with(failures: int, requests: int = 20_000, rps: float = 100.0) -> RunStats:
    return RunStats(requests, failures, requests / rps, 5.0, 9.0, 12.0)


@pytest.mark.parametrize(
    ("failures", "headline"),
    [
        (200, "**PASS at the limit**: error ratio 1.00% against a limit of 1.00%"),
        (199, "**PASS at the limit**: error ratio 1.00% against a limit of 1.00%"),
        (197, "**PASS**: every objective met."),
        (201, "**FAIL**: error ratio missed by 0.005%"),
    ],
)
def test_an_error_ratio_at_its_budget_passes_but_says_so(failures: int, headline: str) -> None:
    goals = slo.objectives(run_with(failures), None, 0.01, None)
    assert verdict(goals).startswith(headline), verdict(goals)
    (goal,) = goals
    assert goal.met == (failures <= 200)
    if goal.at_limit:
        assert goal.verdict() == "met at the limit (within 1% of it: no margin left)"


def test_the_rule_holds_for_every_objective_and_not_for_a_limit_of_zero() -> None:
    run = run_with(0, rps=200.0)
    assert [goal.at_limit for goal in slo.objectives(run, 12.0, None, 200.0)] == [True, True]
    assert [goal.at_limit for goal in slo.objectives(run, 12.2, None, 197.0)] == [False, False]
    (zero,) = slo.objectives(run, None, 0.0, None)
    assert zero.met and not zero.at_limit and verdict([zero]).startswith("**PASS**: every")


def test_a_level_without_invalid_calls_reads_as_before() -> None:
    seconds = {at: Second(at, 10, 1, Counter({2.0: 10})) for at in range(100, 104)}
    timeline = levels.Timeline(seconds, [Level(2, 100.0, 100.0, 104.0)])
    (level,) = levels.all_levels(timeline)
    assert (level.failures, level.invalid, level.failure_ratio) == (4, 0, 0.1)
