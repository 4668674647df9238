"""``k8s/loadtest``: renders with ``kubectl kustomize``, validates strictly at Kubernetes 1.27 and
1.33, and its parts fit together: workers find the master, the options are ones the locustfile
reads, the texts are mounted where it looks, the load goes to the service's own address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from export.corpus import CorpusConfig, load_or_generate
from tests.loadtest_files import REPO, load_locustfile
from tests.unit.deploy import k8s

LOADTEST = REPO / "k8s" / "loadtest"
IMAGE = "registry.example.com/embedding-loadtest:0.1.0"
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def objects() -> Objects:
    return k8s.render(LOADTEST)


def container(objects: Objects, name: str) -> dict[str, Any]:
    pod = k8s.one(objects, "Deployment", name)["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


def environment(objects: Objects, name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container(objects, name)["envFrom"]:
        env.update(k8s.one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return env


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_it_renders_and_validates_strictly(objects: Objects, version: str) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"].rsplit("-", 1)[0]) for o in objects)
    assert [kind for kind, _ in kinds] == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Service",
    ]
    assert k8s.validate(objects, version) == []


def test_workers_reach_the_master_through_its_service(objects: Objects) -> None:
    service = k8s.one(objects, "Service", "locust-master")
    master = k8s.one(objects, "Deployment", "locust-master")["spec"]["template"]
    labels = master["metadata"]["labels"]
    assert all(labels.get(key) == value for key, value in service["spec"]["selector"].items())
    worker_labels = k8s.one(objects, "Deployment", "locust-worker")["spec"]["template"]["metadata"]
    assert service["spec"]["selector"].items() - worker_labels["labels"].items()
    ports = {p["name"]: p for p in container(objects, "locust-master")["ports"]}
    served = {p["name"]: p for p in service["spec"]["ports"]}
    assert {p["targetPort"] for p in served.values()} <= set(ports)
    args = container(objects, "locust-worker")["args"]
    assert "--worker" in args and "--master" in container(objects, "locust-master")["args"]
    assert args[args.index("--master-host") + 1] == service["metadata"]["name"]
    assert int(args[args.index("--master-port") + 1]) == served["master"]["port"]
    exposed = re.search(r"^EXPOSE (.+)$", (REPO / "deploy/Dockerfile.loadtest").read_text(), re.M)
    assert exposed and {p["containerPort"] for p in ports.values()} == {
        int(port) for port in exposed.group(1).split()
    }


def test_master_and_workers_run_the_same_image_and_options(objects: Objects) -> None:
    for name in ("locust-master", "locust-worker"):
        assert container(objects, name)["image"] == IMAGE
    assert environment(objects, "locust-master") == environment(objects, "locust-worker")


def test_every_option_is_one_the_locustfile_or_locust_reads(objects: Objects) -> None:
    flags = set(load_locustfile()["flags"])
    for key in environment(objects, "locust-master"):
        flag = "--" + key.removeprefix("LOCUST_").lower().replace("_", "-")
        assert key.startswith("LOCUST_") and flag in flags, key


def test_the_texts_are_held_out_sentences_mounted_where_the_locustfile_reads_them(
    objects: Objects,
) -> None:
    path = Path(environment(objects, "locust-worker")["LOCUST_TEXTS_FILE"])
    worker = container(objects, "locust-worker")
    (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == str(path.parent)]
    pod = k8s.one(objects, "Deployment", "locust-worker")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    texts = k8s.one(objects, "ConfigMap", volume["configMap"]["name"])["data"][path.name]
    heldout = set(load_or_generate(REPO / "build" / "corpus", CorpusConfig()).heldout.sentences)
    lines = texts.splitlines()
    assert len(lines) >= 100 and set(lines) <= heldout


def test_the_load_goes_to_the_services_grpc_port(objects: Objects) -> None:
    host, port = environment(objects, "locust-worker")["LOCUST_HOST"].rsplit(":", 1)
    service = k8s.one(k8s.render(REPO / "k8s" / "overlays" / "cpu"), "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
