"""Fixtures every test package may use: real Redis servers (``redis_server``, ``redis_cluster``)."""

pytest_plugins = ["tests.redis_servers"]
