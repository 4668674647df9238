"""Connection settings on both sides: the server's age and keepalive, the client's balancing
and keepalive, and the health-only port's setting."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from service import client
from service.config import Settings
from service.transport.server import CLIENT_PING_MIN_MS, NEVER_MS, connection_options


def test_the_server_ages_connections_and_pings_as_configured() -> None:
    settings = Settings(
        max_connection_age_ms=60_000,
        max_connection_age_grace_ms=5_000,
        keepalive_time_ms=30_000,
        keepalive_timeout_ms=7_000,
    )
    options = dict(connection_options(settings))
    assert options["grpc.max_connection_age_ms"] == 60_000
    assert options["grpc.max_connection_age_grace_ms"] == 5_000
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == 7_000
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == CLIENT_PING_MIN_MS


def test_zero_turns_connection_age_and_server_pings_off() -> None:
    options = dict(connection_options(Settings(max_connection_age_ms=0, keepalive_time_ms=0)))
    assert "grpc.max_connection_age_ms" not in options
    assert options["grpc.keepalive_time_ms"] == NEVER_MS  # not gRPC's default of 2 hours


@pytest.mark.parametrize("policy", client.LOAD_BALANCING)
def test_the_client_balances_as_asked(policy: str) -> None:
    options = dict(client.channel_options(load_balancing=policy))
    config = json.loads(options["grpc.service_config"])
    assert config["loadBalancingConfig"] == [{policy: {}}]
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_round_robin_is_the_default_and_unknown_policies_are_refused() -> None:
    config = json.loads(dict(client.channel_options())["grpc.service_config"])
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    with pytest.raises(ValueError, match="load_balancing"):
        client.channel_options(load_balancing="grpclb")


def test_client_pings_are_never_too_many_for_the_server() -> None:
    options = dict(client.channel_options())
    # Faster than the server accepts would get the connection closed (too_many_pings).
    assert options["grpc.keepalive_time_ms"] >= CLIENT_PING_MIN_MS
    assert options["grpc.keepalive_permit_without_calls"] == 1


def test_the_health_port_needs_a_port_of_its_own() -> None:
    assert Settings().health_port == 0
    assert Settings(health_port=8081).health_port == 8081
    for taken in (Settings().port, Settings().metrics_port):
        with pytest.raises(ValidationError, match="health-port"):
            Settings(health_port=taken)
