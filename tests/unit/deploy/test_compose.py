"""``deploy/compose.yaml``, checked offline (no Docker daemon here, so it is never started):
every file it mounts or builds from exists, every EMBED_* variable is a setting, and the
names and ports agree with the service's settings and with the Prometheus and Grafana
configs it mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.config import Settings
from tests.unit.deploy import dockerfiles as df
from tests.unit.deploy import k8s, promql

COMPOSE = df.REPO / "deploy" / "compose.yaml"
SERVICE = "embedding-service"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return promql.load_yaml(COMPOSE)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def settings_of(compose: dict[str, Any]) -> Settings:
    return k8s.settings_from(
        {k: str(v) for k, v in services(compose)[SERVICE]["environment"].items()}
    )


def mounts(service: dict[str, Any]) -> dict[str, Path | str]:
    """Container path → host path (a Path, resolved next to the compose file) or volume name."""
    found: dict[str, Path | str] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = (COMPOSE.parent / source).resolve() if source.startswith(".") else source
    return found


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port → host port."""
    return {int(p.split(":")[-1]): int(p.split(":")[-2]) for p in service.get("ports", [])}


def option(command: list[str], name: str) -> str:
    (value,) = [c.split("=", 1)[1] for c in command if c.startswith(f"{name}=")]
    return value


def test_every_file_it_builds_from_or_mounts_exists(compose: dict[str, Any]) -> None:
    build = services(compose)[SERVICE]["build"]
    context = COMPOSE.parent / build["context"]
    dockerfile = context / build["dockerfile"]
    assert dockerfile.resolve() == df.DOCKERFILES["cpu"]
    stages = {i.stage for i in df.instructions(dockerfile) if i.keyword == "FROM"}
    assert build["target"] in stages
    for name, service in services(compose).items():
        for target, source in mounts(service).items():
            assert isinstance(source, Path) and source.exists(), (name, target, source)


def test_every_embed_variable_is_a_setting(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        keys = [k for k in service.get("environment", {}) if k.startswith("EMBED_")]
        unknown = [k for k in keys if k.removeprefix("EMBED_").lower() not in Settings.model_fields]
        assert not unknown, (name, unknown)
    settings = settings_of(compose)  # and every value parses
    assert settings.host == "0.0.0.0" and settings.device == "cpu"


def test_the_service_ports_models_and_cache(compose: dict[str, Any]) -> None:
    settings = settings_of(compose)
    server = services(compose)[SERVICE]
    assert set(published(server)) == {settings.port, settings.metrics_port, settings.http_port}
    models = mounts(server)[str(settings.models_dir)]
    assert models == df.REPO / "models"
    assert server["read_only"] is True and "/tmp" in server["tmpfs"]
    url = urlsplit(settings.redis_url)
    redis = services(compose)[url.hostname or ""]
    command = redis["command"]
    assert command[0] == "redis-server" and (url.port or 6379) == 6379
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory-policy"] == "allkeys-lru"
    assert k8s.redis_bytes(options["--maxmemory"]) > 0
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"


def test_prometheus_scrapes_the_service_with_the_projects_config(compose: dict[str, Any]) -> None:
    prometheus = services(compose)["prometheus"]
    config_dir = mounts(prometheus)["/etc/prometheus"]
    assert config_dir == df.REPO / "deploy" / "prometheus"
    config_file = option(prometheus["command"], "--config.file")
    assert config_file == "/etc/prometheus/prometheus.yml"
    config = promql.load_yaml(promql.PROMETHEUS_CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == SERVICE]
    (target,) = [t for static in job["static_configs"] for t in static["targets"]]
    host, port = target.split(":")
    assert host in services(compose) and int(port) == settings_of(compose).metrics_port
    listen = option(prometheus["command"], "--web.listen-address")
    assert int(listen.rsplit(":", 1)[1]) in published(prometheus)


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    volumes = mounts(grafana)
    assert volumes["/etc/grafana/provisioning"] == df.REPO / "deploy" / "grafana" / "provisioning"
    providers = promql.load_yaml(
        promql.GRAFANA_DIR / "provisioning" / "dashboards" / "embedding-service.yml"
    )["providers"]
    (provider,) = providers
    dashboards = volumes[provider["options"]["path"]]
    assert isinstance(dashboards, Path) and (dashboards / promql.DASHBOARD.name).exists()
    datasources = promql.load_yaml(
        promql.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    )["datasources"]
    (source,) = datasources
    url = urlsplit(source["url"])
    prometheus = services(compose)["prometheus"]
    listen = option(prometheus["command"], "--web.listen-address")
    assert url.hostname in services(compose) and url.port == int(listen.rsplit(":", 1)[1])
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{promql.DASHBOARD.name}"
