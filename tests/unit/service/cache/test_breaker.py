"""The circuit breaker's states: closed, open for a while, one probe, closed or open again."""

from __future__ import annotations

from service.cache.breaker import BreakerConfig, CircuitBreaker


def breaker() -> tuple[CircuitBreaker, list[float]]:
    now = [0.0]
    return CircuitBreaker(BreakerConfig(failures_to_open=3, open_s=2.0), lambda: now[0]), now


def test_opens_after_consecutive_faults_only() -> None:
    circuit, _ = breaker()
    assert not circuit.failed() and not circuit.failed()
    assert not circuit.succeeded()  # a success resets the count
    assert not circuit.failed() and not circuit.failed()
    assert circuit.allow()
    assert circuit.failed()  # the third in a row opens it, reported once
    assert circuit.is_open and not circuit.allow()


def test_one_probe_after_the_open_period() -> None:
    circuit, now = breaker()
    for _ in range(3):
        circuit.failed()
    now[0] = 1.9
    assert not circuit.allow()
    now[0] = 2.1
    assert circuit.allow()  # the probe
    assert not circuit.allow()  # only one at a time
    assert not circuit.failed()  # a failed probe re-opens silently
    assert not circuit.allow()
    now[0] = 4.2
    assert circuit.allow()
    assert circuit.succeeded()  # closes, reported once
    assert circuit.allow() and circuit.allow()


def test_an_abandoned_probe_frees_the_slot() -> None:
    circuit, now = breaker()
    for _ in range(3):
        circuit.failed()
    now[0] = 3.0
    assert circuit.allow()
    circuit.abandoned()
    assert circuit.allow()


def test_a_late_success_of_an_earlier_call_does_not_close_the_circuit() -> None:
    circuit, now = breaker()
    for _ in range(3):
        circuit.failed()
    assert not circuit.succeeded()  # a call let through while closed, answered after the open
    assert circuit.is_open and not circuit.allow()
    now[0] = 2.1
    assert circuit.allow()  # the probe
    assert circuit.succeeded() and not circuit.is_open
