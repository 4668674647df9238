"""The Kubernetes manifests of ``k8s/``, rendered and validated offline.

Shared by the unit tests of ``k8s/`` and by the integration test that runs the adapter's query
against a real Prometheus:

- ``render(directory)``: ``kubectl kustomize`` of a kustomization, as a list of objects;
- ``validate(objects, version)``: every object against the Kubernetes schemas of ``version``
  (``kubernetes-validate``, strict: unknown fields fail), the CRDs we use against
  ``CRD_SCHEMAS``; returns the problems found;
- ``adapter_rule()`` and ``adapter_query(...)``: prometheus-adapter's rule and its
  ``metricsQuery`` with the templates filled in;
- ``exposed_series()``: the series names ``service.metrics.Metrics`` exposes, with labels;
- ``settings_from(env)``: the ``Settings`` a server reads from an EMBED_* environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.config import Settings, load_settings
from service.metrics import Metrics

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "k8s"
OVERLAYS = {name: K8S / "overlays" / name for name in ("cpu", "gpu", "redis-cluster")}
COMPONENTS = {
    name: K8S / "components" / name for name in ("redis-cluster", "health-port", "models-volume")
}
MONITORING = K8S / "monitoring"
ADAPTER_CONFIG = REPO / "deploy" / "prometheus-adapter" / "config.yaml"
# At least the oldest release with GA gRPC probes, and a recent one.
KUBERNETES_VERSIONS = ("1.27", "1.33", kubernetes_validate.latest_version())
INSTALL_KUBECTL = (
    "kubectl (with its built-in kustomize) is not on PATH: install it from the Kubernetes "
    "release packages (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/, "
    "e.g. the pkgs.k8s.io apt repository's `kubectl`) or Google Cloud SDK's `kubectl` package"
)


def kustomizations() -> list[Path]:
    """Every folder of ``k8s/`` with a Kustomization (components are rendered through one)."""
    found = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(path.parent)
    return found


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(INSTALL_KUBECTL, pytrace=False)
    return path


class RenderError(RuntimeError):
    """kustomize refused the kustomization (its message included)."""


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize directory``'s objects."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory}: {done.stderr.strip()}")
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def with_component(tmp: Path, overlay: Path, component: Path) -> Path:
    """A kustomization in ``tmp`` of ``overlay`` plus ``component`` (relative paths, as
    kustomize wants them)."""
    tmp.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(overlay, tmp)],
        "components": [os.path.relpath(component, tmp)],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return tmp


# -- schemas --------------------------------------------------------------------------------------
_DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
    },
}
# The fields of the Prometheus Operator's CRDs that k8s/ uses (monitoring.coreos.com/v1, as
# its CRDs define them), nothing more: an unknown or misspelt field fails, as strict does.
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": _LABELS},
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "any": {"type": "boolean"},
                            "matchNames": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                            },
                        },
                    },
                },
            },
        },
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "interval": _DURATION,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "oneOf": [
                                            {"required": ["record"]},
                                            {"required": ["alert"]},
                                        ],
                                        "additionalProperties": False,
                                        "properties": {
                                            "record": {"type": "string"},
                                            "alert": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": _DURATION,
                                            "labels": _LABELS,
                                            "annotations": _LABELS,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


def validate(objects: list[dict[str, Any]], version: str) -> list[str]:
    """The problems of ``objects`` at Kubernetes ``version`` (empty when there are none)."""
    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        crd = CRD_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        try:
            if crd is not None:
                jsonschema.validate(obj, crd)
            else:
                kubernetes_validate.validate(obj, version, strict=True)
        except jsonschema.ValidationError as error:
            where = "/".join(map(str, error.absolute_path))
            problems.append(f"{name} at {version}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name}: no Kubernetes {version} schema, and not in CRD_SCHEMAS")
    return problems


# -- reading rendered objects ---------------------------------------------------------------------
def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"want one {kind} {name or ''}, found {len(found)}"
    return found[0]


def server_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", "embedding-service")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "server"]
    return cast(dict[str, Any], container)


def environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The server's EMBED_* variables: its ConfigMap's data, then its own ``env``."""
    container = server_container(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = one(objects, "ConfigMap", source["configMapRef"]["name"])
            env.update(config["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a server reads with exactly ``env`` as its EMBED_* environment."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("EMBED_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        return load_settings([])
    finally:
        for key in [key for key in os.environ if key.startswith("EMBED_")]:
            del os.environ[key]
        os.environ.update(saved)


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}  # fmt: skip


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "2Gi", 2) as a number."""
    match = _QUANTITY.match(str(value))
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def redis_bytes(value: str) -> float:
    """A Redis memory size ("1gb", "512mb", "100kb": powers of 1024, as redis.conf says)."""
    match = re.fullmatch(r"(\d+)(b|kb|mb|gb)?", value.lower())
    if match is None:
        raise ValueError(f"not a Redis size: {value!r}")
    units = {None: 1, "b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}
    return int(match.group(1)) * units[match.group(2)]


# -- prometheus-adapter ---------------------------------------------------------------------------
def adapter_rule(path: Path = ADAPTER_CONFIG) -> dict[str, Any]:
    (rule,) = yaml.safe_load(path.read_text())["rules"]
    return cast(dict[str, Any], rule)


def series_query_metric(rule: dict[str, Any]) -> str:
    """The metric name the adapter discovers series by (``<<.Series>>``)."""
    match = re.match(r"^\s*([A-Za-z_:][\w:]*)", rule["seriesQuery"])
    assert match, rule["seriesQuery"]
    return match.group(1)


def adapter_query(rule: dict[str, Any], label_matchers: str, group_by: str) -> str:
    """The rule's ``metricsQuery`` as the adapter sends it: ``<<.Series>>``,
    ``<<.LabelMatchers>>`` and ``<<.GroupBy>>`` filled in; a template left over raises."""
    values = {
        "Series": series_query_metric(rule),
        "LabelMatchers": label_matchers,
        "GroupBy": group_by,
    }

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ValueError(f"no value for <<.{match.group(1)}>>")
        return values[match.group(1)]

    return re.sub(r"<<\s*\.(\w+)\s*>>", fill, str(rule["metricsQuery"])).strip()


# -- the service's metrics ------------------------------------------------------------------------
def exposed_series() -> dict[str, set[str]]:
    """Every series name ``Metrics().registry`` exposes, with its label names."""
    metrics = Metrics()
    for metric in vars(metrics).values():
        labelnames = getattr(metric, "_labelnames", ())
        if isinstance(metric, MetricWrapperBase) and labelnames:
            metric.labels(*("x" for _ in labelnames))  # a child, so its samples show
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series
