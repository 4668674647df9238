"""The kustomizations of ``k8s/``: each renders with ``kubectl kustomize`` and validates
against the Kubernetes schemas (strict) of several releases, and what they set agrees with
what the service reads and exposes: settings, ports, the autoscaler's metric, the scrape job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings
from tests.unit.deploy import k8s, promql

Objects = list[dict[str, Any]]
RENDERS = {
    **{str(path.relative_to(k8s.K8S)): path for path in k8s.kustomizations()},
    **{f"overlays/cpu+components/{name}": path for name, path in k8s.COMPONENTS.items()},
}
# The renders that deploy the service (k8s/ also holds monitoring/ and the load test's own).
WITH_SERVER = ["base", *(f"overlays/{name}" for name in k8s.OVERLAYS)] + [
    name for name in RENDERS if "+components/" in name
]
QUEUE_ALERT = "EmbedQueueWaitAboveSLO"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Objects]:
    """Every kustomization rendered once; each component through the CPU overlay."""
    out: dict[str, Objects] = {}
    for name, path in RENDERS.items():
        directory = path
        if "+components/" in name:
            tmp = tmp_path_factory.mktemp("component")
            directory = k8s.with_component(tmp, k8s.OVERLAYS["cpu"], path)
        out[name] = k8s.render(directory)
    return out


def settings_of(objects: Objects) -> Settings:
    """The Settings the server would read from its rendered environment (and nothing else)."""
    return k8s.settings_from(k8s.environment(objects))


# -- rendering and schemas ------------------------------------------------------------------------
def test_every_overlay_and_component_is_rendered() -> None:
    assert {"base", "monitoring", *(f"overlays/{name}" for name in k8s.OVERLAYS)} <= set(RENDERS)
    assert all((path / "kustomization.yaml").exists() for path in k8s.COMPONENTS.values())


@pytest.mark.parametrize("version", k8s.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_renders_and_validates_strictly(
    rendered: dict[str, Objects], name: str, version: str
) -> None:
    objects = rendered[name]
    assert objects, f"{name} rendered nothing"
    assert k8s.validate(objects, version) == []


BROKEN = {
    # (what is broken, a patch of the CPU overlay, where the failure must show)
    "misspelt probe field": (
        {
            "target": {"kind": "Deployment", "name": "embedding-service"},
            "patch": "- op: add\n  path: /spec/template/spec/containers/0/readinesProbe\n"
            "  value: {grpc: {port: 50051}}",
        },
        "readinesProbe",
    ),
    "replicas bound of the wrong type": (
        {
            "target": {"kind": "HorizontalPodAutoscaler"},
            "patch": "- op: replace\n  path: /spec/minReplicas\n  value: two",
        },
        "minReplicas",
    ),
    "ServiceMonitor field that does not exist": (
        {
            "target": {"kind": "ServiceMonitor"},
            "patch": "- op: add\n  path: /spec/endpoints/0/intervall\n  value: 10s",
        },
        "intervall",
    ),
    "ServiceMonitor interval that is not a duration": (
        {
            "target": {"kind": "ServiceMonitor"},
            "patch": "- op: replace\n  path: /spec/endpoints/0/interval\n  value: ten seconds",
        },
        "interval",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_manifest_fails_validation(tmp_path: Path, case: str) -> None:
    patch, field = BROKEN[case]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(k8s.OVERLAYS["cpu"], tmp_path)],
        "patches": [patch],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = k8s.render(tmp_path)
    for version in k8s.KUBERNETES_VERSIONS:
        problems = k8s.validate(objects, version)
        assert len(problems) == 1 and field in problems[0], (version, problems)


def test_an_unknown_kind_is_not_waved_through() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    (problem,) = k8s.validate([unknown], "1.33")
    assert "no Kubernetes 1.33 schema" in problem


def test_kustomize_refuses_a_file_outside_the_kustomization(tmp_path: Path) -> None:
    """Why k8s/monitoring/ holds copies of deploy/: the load restrictor."""
    config = {"name": "rules", "files": [os.path.relpath(promql.RECORDING_RULES, tmp_path)]}
    kustomization = {"kind": "Kustomization", "configMapGenerator": [config]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with pytest.raises(k8s.RenderError, match=r"security|outside|not in or below"):
        k8s.render(tmp_path)


# -- copies of deploy/ ----------------------------------------------------------------------------
def test_the_copies_in_k8s_agree_with_deploy(rendered: dict[str, Objects]) -> None:
    files = k8s.MONITORING / "files"
    dashboard = Path(promql.DASHBOARD)
    assert (files / "embedding-service.json").read_bytes() == dashboard.read_bytes()
    assert (files / "prometheus-adapter.yaml").read_bytes() == k8s.ADAPTER_CONFIG.read_bytes()
    objects = rendered["monitoring"]
    rule = k8s.one(objects, "PrometheusRule", "embedding-service")
    groups = [g for path in promql.RULE_FILES for g in promql.load_yaml(path)["groups"]]
    assert rule["spec"]["groups"] == groups, "k8s/monitoring is stale: run `make k8s-sync`"
    board = k8s.one(objects, "ConfigMap", "embedding-service-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["embedding-service.json"]) == promql.load_dashboard()
    adapter = k8s.one(objects, "ConfigMap", "embedding-service-adapter-rules")
    assert yaml.safe_load(adapter["data"]["config.yaml"]) == yaml.safe_load(
        k8s.ADAPTER_CONFIG.read_text()
    )


def test_the_sync_script_finds_nothing_stale() -> None:
    done = subprocess.run(
        [sys.executable, str(k8s.K8S / "sync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the server's settings, ports and probes -------------------------------------------------------
@pytest.mark.parametrize("name", WITH_SERVER)
def test_every_configmap_key_is_a_setting_and_parses(
    rendered: dict[str, Objects], name: str
) -> None:
    env = k8s.environment(rendered[name])
    unknown = [
        key for key in env if key.removeprefix("EMBED_").lower() not in Settings.model_fields
    ]
    assert not unknown and all(key.startswith("EMBED_") for key in env), unknown
    settings = settings_of(rendered[name])
    assert settings.host == "0.0.0.0"
    assert str(settings.models_dir) == "/models"


@pytest.mark.parametrize("name", WITH_SERVER)
def test_probes_and_ports_match_the_settings(rendered: dict[str, Objects], name: str) -> None:
    objects = rendered[name]
    settings = settings_of(objects)
    container = k8s.server_container(objects)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["grpc"] == settings.port
    assert ports["metrics"] == settings.metrics_port
    assert ports["http"] == settings.http_port
    probed = settings.health_port or settings.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == probed, (probe, settings.health_port)
        assert container[probe]["grpc"].get("service", "") == ""  # the overall status
    assert probed in ports.values()
    service = k8s.one(objects, "Service", "embedding-service")
    targets = {port["name"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert targets == {"grpc": "grpc", "metrics": "metrics", "http": "http"}


@pytest.mark.parametrize("name", WITH_SERVER)
def test_lifecycle_timing(rendered: dict[str, Objects], name: str) -> None:
    objects = rendered[name]
    settings = settings_of(objects)
    pod = k8s.one(objects, "Deployment", "embedding-service")["spec"]["template"]["spec"]
    container = k8s.server_container(objects)
    (sleep, seconds) = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    # kubelet kills after terminationGracePeriodSeconds: the endpoints' drain and the
    # server's own grace must fit in it.
    assert pod["terminationGracePeriodSeconds"] > int(seconds) + settings.grace_period_s
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model loading
    assert settings.max_connection_age_ms and settings.max_connection_age_grace_ms


@pytest.mark.parametrize("name", WITH_SERVER)
def test_onnx_runtime_threads_fit_the_cpu_request(rendered: dict[str, Objects], name: str) -> None:
    objects = rendered[name]
    settings = settings_of(objects)
    requested = k8s.quantity(k8s.server_container(objects)["resources"]["requests"]["cpu"])
    # 0 would mean one thread per core of the node, whatever the pod asked for.
    assert 1 <= settings.intra_op_threads <= max(1, requested)


@pytest.mark.parametrize("name", WITH_SERVER)
def test_every_pod_runs_locked_down(rendered: dict[str, Objects], name: str) -> None:
    dockerfile_user = re.search(
        r"^USER (\d+):(\d+)$", (k8s.REPO / "deploy/Dockerfile").read_text(), re.M
    )
    assert dockerfile_user is not None
    for deployment in [o for o in rendered[name] if o["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        # Service links would add variables such as EMBED_PORT=tcp://... for a Service
        # named "embed": they must never reach the settings.
        assert pod["enableServiceLinks"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert "memory" in container["resources"]["limits"]
    server_pod = k8s.one(rendered[name], "Deployment", "embedding-service")["spec"]["template"]
    assert server_pod["spec"]["securityContext"]["runAsUser"] == int(dockerfile_user.group(1))


# -- Services, disruption budget, autoscaling, scraping --------------------------------------------
def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("name", WITH_SERVER)
def test_services_pdb_and_hpa_target_the_server_pods(
    rendered: dict[str, Objects], name: str
) -> None:
    objects = rendered[name]
    deployment = k8s.one(objects, "Deployment", "embedding-service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    cluster = k8s.one(objects, "Service", "embedding-service")
    headless = k8s.one(objects, "Service", "embedding-service-headless")
    assert cluster["spec"]["type"] == "ClusterIP"
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
    for service in (cluster, headless):
        assert selects(service["spec"]["selector"], pod_labels)
    pdb = k8s.one(objects, "PodDisruptionBudget", "embedding-service")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    hpa = k8s.one(objects, "HorizontalPodAutoscaler", "embedding-service")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "embedding-service",
    }
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("name", WITH_SERVER)
def test_the_servicemonitor_scrapes_each_pod_once_as_the_rules_job(
    rendered: dict[str, Objects], name: str
) -> None:
    objects = rendered[name]
    monitor = k8s.one(objects, "ServiceMonitor", "embedding-service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [o for o in objects if o["kind"] == "Service"]
    (scraped,) = [s for s in services if selects(selector, s["metadata"]["labels"])]
    assert scraped["metadata"]["name"] == "embedding-service"  # not the headless one too
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in scraped["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The job label, as the rules, alerts and dashboard of deploy/prometheus select it.
    config = promql.load_yaml(promql.PROMETHEUS_CONFIG)
    assert scraped["metadata"]["labels"][monitor["spec"]["jobLabel"]] in {
        job["job_name"] for job in config["scrape_configs"]
    }


def seconds(duration: str) -> float:
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def test_the_hpa_scales_on_the_adapters_metric_and_cpu(rendered: dict[str, Objects]) -> None:
    rule = k8s.adapter_rule()
    assert re.fullmatch(rule["name"]["matches"], k8s.series_query_metric(rule))
    for name in WITH_SERVER:
        hpa = k8s.one(rendered[name], "HorizontalPodAutoscaler", "embedding-service")
        pods, cpu = hpa["spec"]["metrics"]
        assert pods["type"] == "Pods"
        assert pods["pods"]["metric"]["name"] == rule["name"]["as"]
        assert pods["pods"]["target"]["type"] == "AverageValue"
        target = k8s.quantity(pods["pods"]["target"]["averageValue"])
        (alert,) = [a for a in promql.alert_expressions() if a[0] == QUEUE_ALERT]
        assert 0 < target < alert[3], "scale out before the queue-wait alert fires"
        assert cpu["type"] == "Resource" and cpu["resource"]["name"] == "cpu"
    cpu_overlay = k8s.one(rendered["overlays/cpu"], "HorizontalPodAutoscaler")
    assert cpu_overlay["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"] == 70


def test_the_adapter_reads_metrics_the_service_exposes() -> None:
    rule = k8s.adapter_rule()
    query = k8s.adapter_query(rule, 'namespace="ns",pod=~"a|b"', "pod")
    exposed = k8s.exposed_series()
    used = promql.metric_names(query) | {k8s.series_query_metric(rule)}
    assert used == {"embed_queue_duration_seconds_sum", "embed_queue_duration_seconds_count"}
    for metric in used:
        assert metric in exposed, metric
        assert "model" in exposed[metric]
    # The adapter maps the namespace and pod labels that the Prometheus Operator adds.
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_the_adapter_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `make test-tools`")
    query = k8s.adapter_query(k8s.adapter_rule(), 'namespace="ns",pod=~"a|b"', "namespace,pod")
    path = tmp_path / "adapter.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "a", "rules": [{"record": "a:b", "expr": query}]}]})
    )
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_adapter_window_holds_enough_scrapes(rendered: dict[str, Objects]) -> None:
    windows = set(re.findall(r"\[(\w+)\]", k8s.adapter_rule()["metricsQuery"]))
    assert windows == {"30s"}
    monitor = k8s.one(rendered["base"], "ServiceMonitor")
    interval = seconds(monitor["spec"]["endpoints"][0]["interval"])
    assert seconds("30s") >= 3 * interval, "rate() over the window needs several samples"


# -- the overlays ---------------------------------------------------------------------------------
def image_tag(objects: Objects) -> str:
    return str(k8s.server_container(objects)["image"]).rsplit(":", 1)[1]


def test_the_cpu_overlay(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/cpu"]
    assert settings_of(objects).device == "cpu"
    assert image_tag(objects).endswith("-cpu")
    resources = k8s.server_container(objects)["resources"]
    assert "nvidia.com/gpu" not in resources.get("limits", {})
    assert k8s.quantity(resources["requests"]["cpu"]) == 2
    assert k8s.quantity(resources["requests"]["memory"]) == 2 * 2**30
    assert k8s.quantity(resources["limits"]["memory"]) > k8s.quantity(
        resources["requests"]["memory"]
    )


def test_the_gpu_overlay(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/gpu"]
    assert settings_of(objects).device == "cuda"
    assert image_tag(objects).endswith("-gpu")
    pod = k8s.one(objects, "Deployment", "embedding-service")["spec"]["template"]["spec"]
    assert k8s.server_container(objects)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    cpu_startup = k8s.server_container(rendered["overlays/cpu"])["startupProbe"]
    assert (
        k8s.server_container(objects)["startupProbe"]["failureThreshold"]
        > cpu_startup["failureThreshold"]
    )


def redis_of(objects: Objects) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = k8s.one(objects, "Deployment", "embedding-redis")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container, k8s.one(objects, "Service", "embedding-redis")


@pytest.mark.parametrize("name", ["base", "overlays/cpu", "overlays/gpu"])
def test_the_bundled_redis_is_bounded_and_the_servers_cache(
    rendered: dict[str, Objects], name: str
) -> None:
    container, service = redis_of(rendered[name])
    args = container["args"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options["--maxmemory-policy"] == "allkeys-lru"
    limit = k8s.quantity(container["resources"]["limits"]["memory"])
    assert k8s.redis_bytes(options["--maxmemory"]) < limit
    settings = settings_of(rendered[name])
    port = service["spec"]["ports"][0]["port"]
    assert settings.redis_url == f"redis://{service['metadata']['name']}:{port}/0"
    assert not settings.redis_cluster and settings.cache == "on"


def test_the_redis_cluster_overlay(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/redis-cluster"]
    settings = settings_of(objects)
    assert settings.redis_cluster and settings.redis_url.startswith("redis://")
    assert not [o for o in objects if o["metadata"]["name"] == "embedding-redis"]
    assert settings.device == "cpu"


def test_the_health_port_component(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/cpu+components/health-port"]
    settings = settings_of(objects)
    assert settings.health_port == 8081 != settings.port
    container = k8s.server_container(objects)
    assert {"name": "health", "containerPort": 8081, "protocol": "TCP"} in container["ports"]


def test_the_models_volume_component(rendered: dict[str, Objects]) -> None:
    objects = rendered["overlays/cpu+components/models-volume"]
    settings = settings_of(objects)
    (mount,) = [m for m in k8s.server_container(objects)["volumeMounts"] if m["name"] == "models"]
    assert mount == {"name": "models", "mountPath": str(settings.models_dir), "readOnly": True}
    claim = k8s.one(objects, "PersistentVolumeClaim", "embedding-models")
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
