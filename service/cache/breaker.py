"""A circuit breaker for the Redis tier: after repeated faults, stop calling it for a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BreakerConfig:
    failures_to_open: int = 3
    """Consecutive faults that open the circuit."""
    open_s: float = 2.0
    """How long an open circuit refuses calls before one probe may go through."""


class CircuitBreaker:
    """Closed: every call goes through. Open: none do, until ``open_s`` has passed; then one probe
    goes through (half-open) and its outcome closes or re-opens the circuit.

    Used from the event loop only, so it needs no lock.
    """

    def __init__(
        self, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (the caller must then report its outcome
        with ``succeeded``, ``failed`` or, if it never finished, ``abandoned``)."""
        if self._opened_at is None:
            return True
        if self._probing or self._clock() - self._opened_at < self.config.open_s:
            return False
        self._probing = True
        return True

    def succeeded(self) -> bool:
        """Records a success; True if this closed an open circuit. Only the probe closes it: a
        call let through before the circuit opened may still finish well after the dependency
        went down, and must not close the circuit for the calls behind it to fail again."""
        if self._opened_at is not None and not self._probing:
            return False
        was_open = self._opened_at is not None
        self._failures, self._opened_at, self._probing = 0, None, False
        return was_open

    def failed(self) -> bool:
        """Records a fault; True if this opened a closed circuit (a failed probe re-opens it
        silently)."""
        self._probing = False
        if self._opened_at is not None:
            self._opened_at = self._clock()
            return False
        self._failures += 1
        if self._failures >= self.config.failures_to_open:
            self._opened_at = self._clock()
            return True
        return False

    def abandoned(self) -> None:
        """A call that was allowed ended without an outcome (cancelled): free the probe slot."""
        self._probing = False
