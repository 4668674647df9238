"""The real-Redis test helpers: a standalone server and a 3-node cluster, crashed and restarted."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_servers import HOST, RedisClusterServers, RedisServer, RedisStartError
from tests.redis_servers import redis_cluster as redis_cluster_fixture  # noqa: F401
from tests.redis_servers import redis_server as redis_server_fixture  # noqa: F401


def refuses_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) != 0


def test_server_answers_set_and_get(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis_server.client()
    try:
        assert client.set(b"key", b"value")
        assert client.get(b"key") == b"value"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()
    url_client = redis.Redis.from_url(redis_server.url)
    try:
        assert url_client.get(b"key") == b"value"
    finally:
        url_client.close()


def test_kill_refuses_connections_and_restart_comes_back_empty(redis_server: RedisServer) -> None:
    port = redis_server.port
    # No retries: redis-py's default (3, with backoff) takes seconds to give up on a dead server.
    client = redis_server.client(
        socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.set(b"key", b"value")
        redis_server.kill()
        assert not redis_server.running
        assert refuses_connections(port)
        with pytest.raises(redis.ConnectionError):
            client.get(b"key")

        redis_server.restart()
        assert redis_server.port == port
        assert client.ping()
        assert client.get(b"key") is None  # --save '' and no AOF: the data died with it
    finally:
        client.close()


def test_extra_args_and_stop_is_idempotent(tmp_path) -> None:
    with RedisServer(tmp_path, extra_args=["--maxmemory", "1mb"]) as server:
        client = server.client()
        try:
            assert client.config_get("maxmemory") == {"maxmemory": str(1024 * 1024)}
        finally:
            client.close()
        server.stop()
        assert refuses_connections(server.port)
        server.stop()
    assert server.log_path.exists()


def test_cluster_spreads_keys_over_all_three_nodes(redis_cluster: RedisClusterServers) -> None:
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.ports[0]}"
    assert len(set(redis_cluster.ports)) == 3
    client = redis_cluster.client()
    try:
        keys = [f"key-{i}".encode() for i in range(30)]
        for key in keys:
            assert client.set(key, key)
        assert all(client.get(key) == key for key in keys)
    finally:
        client.close()

    # Check the placement on the nodes themselves, not through the cluster client.
    holders: dict[bytes, int] = {}
    for port in redis_cluster.ports:
        node = redis.Redis(host=HOST, port=port)
        try:
            held = list(node.scan_iter(count=100))
            slots = {int(node.execute_command("CLUSTER KEYSLOT", key)) for key in held}
            owned = {int(node.execute_command("CLUSTER COUNTKEYSINSLOT", slot)) for slot in slots}
        finally:
            node.close()
        assert held, f"node {port} holds no key"
        assert 0 not in owned
        holders.update(dict.fromkeys(held, port))
    assert sorted(holders) == sorted(keys)
    assert set(holders.values()) == set(redis_cluster.ports)


def test_cluster_fails_when_a_master_dies_and_recovers_on_restart(
    redis_cluster: RedisClusterServers,
) -> None:
    redis_cluster.kill_node(0)
    assert refuses_connections(redis_cluster.ports[0])
    redis_cluster.wait_state("fail", timeout=10)
    assert redis_cluster.node_state(1) == "fail"
    assert redis_cluster.node_state(2) == "fail"

    redis_cluster.restart_node(0)
    assert redis_cluster.states() == dict.fromkeys(redis_cluster.ports, "ok")
    client = redis_cluster.client()
    try:
        keys = [f"after-{i}".encode() for i in range(30)]
        for key in keys:
            assert client.set(key, b"v")
        assert client.get(keys[-1]) == b"v"
    finally:
        client.close()


def test_start_failure_reports_the_log(tmp_path) -> None:
    server = RedisServer(tmp_path, extra_args=["--no-such-directive", "x"])
    with pytest.raises(RedisStartError, match=r"exited with status 1[\s\S]*no-such-directive"):
        server.start()
    server.stop()
