"""What the server's own metrics say about the run, from the scrapes taken during it.

Per interval between two scrapes (the plots over time) and per level (the table): mean queue
wait and mean inference time per request, mean batch size, mean padding efficiency (all for
the model under load), and the cache hit ratio: texts any tier answered over texts looked up
(the lookups of the first tier, memory before Redis). And the request counts the server saw,
to set against Locust's.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bench.loadtest.scrape import Scrape, increase

TIERS = ("memory", "redis")
REQUESTS = "embed_requests_total"


@dataclass(frozen=True)
class ServerFigures:
    start: float
    end: float
    queue_ms: float | None
    inference_ms: float | None
    batch_size: float | None
    padding_efficiency: float | None
    hit_ratio: float | None
    tier_hit_ratios: dict[str, float]


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _model_mean(before: Scrape, after: Scrape, histogram: str, model: str) -> float | None:
    count = increase(before, after, f"{histogram}_count", model=model)
    if count <= 0:
        return None
    return increase(before, after, f"{histogram}_sum", model=model) / count


def figures(before: Scrape, after: Scrape, model: str) -> ServerFigures:
    lookups = "embed_cache_lookups_total"
    tiers = [tier for tier in TIERS if increase(before, after, lookups, tier=tier) > 0]
    ratios = {
        tier: increase(before, after, lookups, tier=tier, result="hit")
        / increase(before, after, lookups, tier=tier)
        for tier in tiers
    }
    hits = sum(increase(before, after, lookups, tier=tier, result="hit") for tier in tiers)
    looked_up = increase(before, after, lookups, tier=tiers[0]) if tiers else 0.0
    return ServerFigures(
        start=before.at,
        end=after.at,
        queue_ms=_ms(_model_mean(before, after, "embed_queue_duration_seconds", model)),
        inference_ms=_ms(_model_mean(before, after, "embed_inference_duration_seconds", model)),
        batch_size=_model_mean(before, after, "embed_batch_size", model),
        padding_efficiency=_model_mean(before, after, "embed_batch_padding_efficiency", model),
        hit_ratio=hits / looked_up if looked_up > 0 else None,
        tier_hit_ratios=ratios,
    )


def over_time(scrapes: Sequence[Scrape], model: str) -> list[ServerFigures]:
    return [figures(a, b, model) for a, b in itertools.pairwise(scrapes)]


def within(scrapes: Sequence[Scrape], start: float, end: float, model: str) -> ServerFigures | None:
    """Figures between the first scrape at or after ``start`` and the last at or before ``end``."""
    inside = [scrape for scrape in scrapes if start <= scrape.at <= end]
    if len(inside) < 2:
        return None
    return figures(inside[0], inside[-1], model)


def requests_seen(before: Scrape, after: Scrape, methods: Collection[str]) -> float:
    """Calls of these methods the server counted between two scrapes, every model and code."""
    return increase(before, after, REQUESTS, method=methods)


def providers(scrape: Scrape) -> str:
    """The ONNX Runtime providers the server reports in ``embed_build_info``."""
    return ", ".join(sorted(scrape.label_values("embed_build_info", "providers"))) or "unknown"
