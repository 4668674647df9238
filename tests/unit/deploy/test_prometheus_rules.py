"""The Prometheus config, rules and alerts, and the Grafana dashboard of ``deploy/``.

promtool (Debian's ``prometheus`` package, installed by ``make test-tools``) checks the config
and the rules and runs the rules' unit tests (``deploy/prometheus/tests/alerts_test.yml``); it
also parses every dashboard query. The rest ties the files to ``service.metrics.Metrics``: a
metric or label renamed there without the rules and the dashboard fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from service.config import Settings
from service.metrics import Metrics
from tests.unit.deploy import promql

INSTALL = (
    "promtool is missing: run `make test-tools`, or "
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus"
)

# Other services (the autoscaler, SLO reports) query these names: never rename one here only.
RECORDS = [
    "embed:requests:rate1m",
    "embed:error_ratio:rate1m",
    "embed:http_requests:rate1m",
    "embed:http_error_ratio:rate1m",
    "embed:request_duration_seconds:p50",
    "embed:request_duration_seconds:p95",
    "embed:request_duration_seconds:p99",
    "embed:queue_duration_seconds:mean1m",
    "embed:inference_duration_seconds:mean1m",
    "embed:cache_hit_ratio:rate5m",
]
# name: (comparison, threshold, for)
ALERTS = {
    "EmbedHighErrorRatio": (">", 0.05, "5m"),
    "EmbedHttpHighErrorRatio": (">", 0.05, "5m"),
    "EmbedQueueWaitAboveSLO": (">", 0.1, "5m"),
    "EmbedCacheErrors": (">", 0.0, "5m"),
    "EmbedModelNotReady": ("==", 0.0, "1m"),
    "EmbedNoScrape": ("==", 0.0, "2m"),
}
SERVER_ERRORS = {
    "INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "DATA_LOSS",
}  # fmt: skip
# Series Prometheus itself adds to every scrape, with their labels.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}

# topic: (panel title regex, metrics the panel must query, texts its queries must contain)
TOPICS: dict[str, tuple[str, set[str], tuple[str, ...]]] = {
    "request rate": (r"request rate", {"embed_requests_total"}, ()),
    "error rate by code": (r"error rate by code", {"embed_requests_total"}, ("by (code)",)),
    "p50/p95/p99 latency": (
        r"latency",
        {"embed_request_duration_seconds_bucket"},
        ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,"),
    ),
    "queue wait against inference time": (
        r"queue wait.*inference",
        {"embed_queue_duration_seconds_sum", "embed_inference_duration_seconds_sum"},
        (),
    ),
    "batch size": (r"batch size", {"embed_batch_size_sum"}, ()),
    "padding efficiency": (r"padding efficiency", {"embed_batch_padding_efficiency_sum"}, ()),
    "cache hit ratio by tier": (
        r"cache hit ratio",
        {"embed_cache_lookups_total"},
        ("by (tier)", 'result="hit"'),
    ),
    "queue depth": (r"queue depth", {"embed_queue_depth"}, ()),
    "in-flight requests": (r"in-flight", {"embed_inflight_requests"}, ()),
    "HTTP API requests by status": (r"http api", {"embed_http_requests_total"}, ("by (code)",)),
    "load ratio": (
        r"load ratio",
        {"embed_request_duration_seconds_sum", "embed_inference_duration_seconds_sum"},
        (),
    ),
}


# -- promtool -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(INSTALL)
    return path


def run_promtool(promtool: str, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)],
        cwd=promql.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def test_the_config_is_valid_and_loads_both_rule_files(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", promql.PROMETHEUS_CONFIG)
    # The rule_files glob resolves next to the config: an empty match would pass silently.
    assert "2 rule files found" in output, output
    for path in promql.RULE_FILES:
        assert path.name in output, output


@pytest.mark.parametrize("path", promql.RULE_FILES, ids=lambda path: path.name)
def test_the_rule_files_are_valid(promtool: str, path: Path) -> None:
    run_promtool(promtool, "check", "rules", path)


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", promql.RULE_TESTS)
    assert "SUCCESS" in output, output


@pytest.mark.parametrize("model", [promql.ALL_MODELS, "bert"])
def test_every_dashboard_query_and_alert_left_side_parses(
    promtool: str, tmp_path: Path, model: str
) -> None:
    expressions = promql.dashboard_expressions(model) + [
        left for _, left, _, _ in promql.alert_expressions()
    ]
    rules = [{"record": f"check:expression_{i}", "expr": e} for i, e in enumerate(expressions)]
    path = tmp_path / "expressions.yml"
    path.write_text(json.dumps({"groups": [{"name": "check", "rules": rules}]}))  # YAML ⊇ JSON
    output = run_promtool(promtool, "check", "rules", path)
    assert f"{len(rules)} rules found" in output, output


# -- the rules ------------------------------------------------------------------------------------
def test_the_record_names_are_the_ones_other_services_query() -> None:
    assert promql.recording_rules() == RECORDS


def test_the_error_ratio_counts_server_side_failures_only() -> None:
    expr = promql.recording_expressions()["embed:error_ratio:rate1m"]
    (codes,) = re.findall(r'code=~"([^"]+)"', expr)
    assert set(codes.split("|")) == SERVER_ERRORS
    assert "clamp_min(" in expr


def test_the_alerts_have_their_thresholds_severity_and_annotations() -> None:
    found = {name: (op, threshold) for name, _, op, threshold in promql.alert_expressions()}
    assert found == {name: (op, threshold) for name, (op, threshold, _) in ALERTS.items()}
    for rule in promql.rules(promql.ALERT_RULES):
        name = rule["alert"]
        assert rule["for"] == ALERTS[name][2], name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert set(rule["annotations"]) >= {"summary", "description"}, name
        assert all(str(text).strip() for text in rule["annotations"].values()), name


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = promql.load_yaml(promql.RULE_TESTS)
    base = promql.RULE_TESTS.parent
    loaded = {(base / path).resolve() for path in tests["rule_files"]}
    assert loaded == {path.resolve() for path in promql.RULE_FILES}
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert firing == set(ALERTS), "alerts never tested firing: " + str(set(ALERTS) - firing)
    assert quiet == set(ALERTS), "alerts never tested quiet: " + str(set(ALERTS) - quiet)
    tested = {case["expr"] for test in tests["tests"] for case in test.get("promql_expr_test", [])}
    assert tested == set(RECORDS), "recording rules without a value test: " + str(
        set(RECORDS) - tested
    )


def test_the_scrape_config_matches_the_service() -> None:
    config = promql.load_yaml(promql.PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["rules/*.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "embedding-service"]
    assert job["metrics_path"] == "/metrics"
    assert job["scrape_interval"] == "15s"
    (target,) = [t for static in job["static_configs"] for t in static["targets"]]
    assert target == f"embedding-service:{Settings.model_fields['metrics_port'].default}"


# -- the names --------------------------------------------------------------------------------
def exported_series() -> dict[str, set[str]]:
    """Every series name ``Metrics`` exposes, with its label names (``le`` for buckets)."""
    metrics = Metrics()
    for metric in vars(metrics).values():
        labelnames = getattr(metric, "_labelnames", ())
        if isinstance(metric, MetricWrapperBase) and labelnames:
            metric.labels(*("x" for _ in labelnames))  # a child, so its samples show
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
    }
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            series.setdefault(family.name + suffix, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def all_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every rule and every dashboard query, variables substituted."""
    found = [(f"record {name}", e) for name, e in promql.recording_expressions().items()]
    found += [(f"alert {name}", left) for name, left, _, _ in promql.alert_expressions()]
    found += [(f"dashboard query {e!r}", e) for e in promql.dashboard_expressions()]
    return found


def test_the_exported_series_are_seen() -> None:
    series = exported_series()
    assert {"embed_requests_total", "embed_cache_writes_dropped_total", "embed_queue_depth"} <= set(
        series
    )
    assert {"method", "model", "code"} == series["embed_requests_total"]
    assert {"model", "operation", "le"} == series["embed_batch_size_bucket"]


def test_every_metric_referenced_exists_in_the_service() -> None:
    series = exported_series() | PROMETHEUS_SERIES
    records = set(promql.recording_rules())
    missing: list[str] = []
    for where, expr in all_expressions():
        for name in sorted(promql.metric_names(expr)):
            known = records if ":" in name else series
            if name not in known:
                missing.append(f"{name} ({where})")
    variable_queries = [
        variable["definition"]
        for variable in promql.load_dashboard()["templating"]["list"]
        if variable["type"] == "query"
    ]
    for query in variable_queries:
        for name in re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,", query):
            if name not in series:
                missing.append(f"{name} (dashboard variable {query!r})")
    assert not missing, "not exported by service.metrics.Metrics: " + ", ".join(missing)


def selectors(expr: str) -> Iterable[tuple[str, set[str]]]:
    """(metric, label names matched) for each selector of a metric in ``expr``."""
    for name in promql.metric_names(expr):
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:(])\s*(\{{[^}}]*\}})?", expr):
            matchers = match.group(1) or "{}"
            yield name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))


def test_every_label_used_exists_on_its_metric() -> None:
    series = exported_series() | PROMETHEUS_SERIES
    wrong: list[str] = []
    for where, expr in all_expressions():
        raw = {name for name in promql.metric_names(expr) if ":" not in name}
        labels_of_expr = set().union(*(series.get(name, set()) for name in raw)) | {"le"}
        for name, matched in selectors(expr):
            if ":" not in name and not matched <= series.get(name, set()):
                wrong.append(f"{name}{{{', '.join(sorted(matched))}}} ({where})")
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            grouped = {label.strip() for label in grouping.split(",") if label.strip()}
            if raw and not grouped <= labels_of_expr:
                wrong.append(f"by ({grouping}) ({where})")
    assert not wrong, "labels the metrics do not have: " + "; ".join(wrong)


def test_dashboard_queries_filter_on_the_model_variable() -> None:
    series = exported_series()
    unfiltered: list[str] = []
    for panel in promql.dashboard_panels():
        for target in panel["targets"]:
            for name, _ in selectors(target["expr"]):
                if "model" not in series.get(name, set()):
                    continue
                pattern = rf'{re.escape(name)}\{{[^}}]*model=~"\$model"[^}}]*\}}'
                if not re.search(pattern, target["expr"]):
                    unfiltered.append(f"{name} in {panel['title']!r}")
    assert not unfiltered, 'selectors without model=~"$model": ' + ", ".join(unfiltered)


# -- the helper -----------------------------------------------------------------------------------
def test_metric_names_leaves_out_functions_labels_and_numbers() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (method, le) (rate(foo_bucket{code=~"A|B"}[1m])))'
        " / clamp_min(sum without (x) (bar_total offset 5m), 1e-9) > bool 2"
        " or on (model) 0 * embed:requests:rate1m"
    )
    assert promql.metric_names(expr) == {"foo_bucket", "bar_total", "embed:requests:rate1m"}


@pytest.mark.parametrize(
    ("expr", "split"),
    [
        ("embed:error_ratio:rate1m > 0.05", ("embed:error_ratio:rate1m", ">", 0.05)),
        ('up{job="a>b"} == 0', ('up{job="a>b"}', "==", 0.0)),
        ("(a or b * 0) >= 1e-3", ("(a or b * 0)", ">=", 0.001)),
        ("max by (model) (x) != 1", ("max by (model) (x)", "!=", 1.0)),
    ],
)
def test_split_comparison(expr: str, split: tuple[str, str, float]) -> None:
    assert promql.split_comparison(expr) == split


@pytest.mark.parametrize("expr", ["a", "a > 1 < 2", "a > b", "a or b > 0", "a > bool 1", "(a > 1"])
def test_split_comparison_refuses_other_shapes(expr: str) -> None:
    with pytest.raises(ValueError):
        promql.split_comparison(expr)


def test_dashboard_expressions_substitute_every_variable() -> None:
    for model in (promql.ALL_MODELS, "bert"):
        expressions = promql.dashboard_expressions(model)
        assert expressions
        assert not [e for e in expressions if "$" in e]
        assert all("[1m]" in e for e in expressions if "rate(" in e)
    assert any('model=~"bert"' in e for e in promql.dashboard_expressions("bert"))
    with pytest.raises(ValueError, match="__interval"):
        promql.substitute("rate(x[$__interval])")


# -- the dashboard --------------------------------------------------------------------------------
def test_the_dashboard_is_valid_grafana_json() -> None:
    board = json.loads(promql.DASHBOARD.read_text())
    assert board["uid"] == "embedding-service"
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    model = variables["model"]
    assert model["type"] == "query"
    assert model["definition"] == "label_values(embed_requests_total, model)"
    assert model["datasource"]["uid"] == "${datasource}"
    assert model["multi"] is True
    assert model["includeAll"] is True
    assert model["allValue"] == promql.ALL_MODELS

    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in promql.dashboard_panels(board):
        title = panel.get("title")
        assert title, panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        targets: list[dict[str, Any]] = panel.get("targets", [])
        assert targets, f"{title!r} has no target"
        assert all(str(target.get("expr", "")).strip() for target in targets), title
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in targets:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title


@pytest.mark.parametrize("topic", list(TOPICS))
def test_the_dashboard_has_the_panel(topic: str) -> None:
    title, metrics, texts = TOPICS[topic]
    for panel in promql.dashboard_panels():
        if not re.search(title, panel["title"], re.IGNORECASE):
            continue
        exprs = [target["expr"] for target in panel["targets"]]
        used = set().union(*(promql.metric_names(e) for e in exprs))
        if metrics <= used and all(any(text in e for e in exprs) for text in texts):
            return
    pytest.fail(f"no panel titled like {title!r} querying {sorted(metrics)} with {texts}")


def test_the_grafana_provisioning() -> None:
    datasources = promql.load_yaml(
        promql.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    )
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    dashboards = promql.load_yaml(
        promql.GRAFANA_DIR / "provisioning" / "dashboards" / "embedding-service.yml"
    )
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
