"""The server's ``/metrics``, scraped once a second while the load runs.

Each scrape keeps the ``embed_*`` samples with the time it was taken (seconds since the
epoch, the clock of the Locust timeline). What the report needs is a difference of two
scrapes: a counter's increase, or a histogram's mean (sum over count) between them.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "embed_"
Series = list[tuple[dict[str, str], float]]


@dataclass(frozen=True)
class Scrape:
    at: float
    samples: dict[str, Series]
    """Sample name → (labels, value) of each of its series."""

    def total(self, name: str, **match: str | Collection[str]) -> float:
        """Sum of the samples called ``name`` whose labels match (a value, or any of several)."""
        return sum(value for labels, value in self.samples.get(name, ()) if _matches(labels, match))

    def label_values(self, name: str, label: str) -> set[str]:
        return {labels[label] for labels, _ in self.samples.get(name, ()) if label in labels}


def _matches(labels: dict[str, str], match: dict[str, str | Collection[str]]) -> bool:
    for key, wanted in match.items():
        value = labels.get(key)
        if isinstance(wanted, str) and value != wanted:
            return False
        if not isinstance(wanted, str) and value not in wanted:
            return False
    return True


def increase(before: Scrape, after: Scrape, name: str, **match: str | Collection[str]) -> float:
    return after.total(name, **match) - before.total(name, **match)


def mean(before: Scrape, after: Scrape, histogram: str) -> float | None:
    """A histogram's mean over the observations between two scrapes (``None`` if none)."""
    count = increase(before, after, f"{histogram}_count")
    return increase(before, after, f"{histogram}_sum") / count if count > 0 else None


def parse(text: str, at: float) -> Scrape:
    samples: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                series = samples.setdefault(sample.name, [])
                series.append((dict(sample.labels), float(sample.value)))
    return Scrape(at, samples)


def scrape_once(url: str, timeout_s: float = 2.0) -> Scrape | None:
    """One scrape, or ``None`` when the server does not answer (it may be down)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return parse(text, time.time())


@dataclass
class Scraper:
    """Scrapes ``url`` every ``interval_s`` on a thread, for at most ``limit_s``."""

    url: str
    limit_s: float
    interval_s: float = 1.0
    scrapes: list[Scrape] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        for _ in range(int(self.limit_s / self.interval_s) + 1):
            if self._stop.wait(self.interval_s) or time.monotonic() > deadline:
                return
            scrape = scrape_once(self.url)
            if scrape is None:
                self.failures += 1
            else:
                self.scrapes.append(scrape)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
