"""The PromQL of ``deploy/``: the dashboard's queries, the recording rules and the alerts.

Shared by the unit tests of ``deploy/`` (offline, with promtool) and by any test that runs the
expressions against a real Prometheus scraping a real server:

- ``dashboard_expressions(model)``: every panel query of the Grafana dashboard, with the
  dashboard's variables substituted (``$model`` by ``model``, a regex since the dashboard
  matches it with ``=~``; ``$__rate_interval`` by ``1m``), ready to send to Prometheus;
- ``recording_rules()``: the record names of ``rules/recording.yml``;
- ``alert_expressions()``: each alert as (name, left side, comparison, threshold), the left
  side being what should return data while the service runs (the comparison stripped);
- ``metric_names(expr)``: the metric names an expression selects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import yaml  # type: ignore[import-untyped, unused-ignore]

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RECORDING_RULES = PROMETHEUS_DIR / "rules" / "recording.yml"
ALERT_RULES = PROMETHEUS_DIR / "rules" / "alerts.yml"
RULE_FILES = (RECORDING_RULES, ALERT_RULES)
RULE_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "embedding-service.json"

ALL_MODELS = ".+"
RATE_INTERVAL = "1m"

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OPERATORS = re.compile(r"\b(and|or|unless)\b")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATION = re.compile(r"(?<![\w:.])(?:\d+(?:ms|[smhdwy]))+(?![\w:])")
_NUMBER = re.compile(r"(?<![\w:.])\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "atan2", "inf", "nan",
    }
)  # fmt: skip
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


# -- files ----------------------------------------------------------------------------------------
def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return cast(dict[str, Any], data)


def rules(path: Path) -> list[dict[str, Any]]:
    """The rules of a rule file, every group in order."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text()))


def dashboard_panels(dashboard: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel but rows, including those nested in (collapsed) rows."""
    board = load_dashboard() if dashboard is None else dashboard
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


# -- the expressions ------------------------------------------------------------------------------
def substitute(expr: str, model: str = ALL_MODELS, rate_interval: str = RATE_INTERVAL) -> str:
    """A dashboard query with its Grafana variables replaced; a variable left over raises."""
    values = {"model": model, "__rate_interval": rate_interval}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"no value for the dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def dashboard_expressions(model: str = ALL_MODELS) -> list[str]:
    """Every query of every dashboard panel, ``$model`` replaced by ``model`` (a regex)."""
    return [
        substitute(target["expr"], model)
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def recording_rules() -> list[str]:
    """The record names, in file order."""
    return [rule["record"] for rule in rules(RECORDING_RULES)]


def recording_expressions() -> dict[str, str]:
    """Each record name with its expression."""
    return {rule["record"]: str(rule["expr"]).strip() for rule in rules(RECORDING_RULES)}


def alert_expressions() -> list[tuple[str, str, str, float]]:
    """Each alert as (name, left side, comparison, threshold)."""
    return [(rule["alert"], *split_comparison(str(rule["expr"]))) for rule in rules(ALERT_RULES)]


def split_comparison(expr: str) -> tuple[str, str, float]:
    """``<expression> <comparison> <number>`` as (expression, comparison, number).

    The comparison must be the only one outside parentheses, braces and brackets, with a number
    on its right and no ``bool`` modifier; ``and``/``or``/``unless`` outside parentheses are
    refused (they bind less tightly than a comparison, so the left side would not be what is
    compared).
    """
    masked = _mask(expr)
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(masked):
        op = next((c for c in COMPARISONS if masked.startswith(c, i)), None)
        if op is None:
            i += 1
            continue
        found.append((i, op))
        i += len(op)
    if len(found) != 1:
        raise ValueError(f"want exactly one top-level comparison, found {len(found)}: {expr!r}")
    if _SET_OPERATORS.search(masked):
        raise ValueError(f"a set operator outside parentheses: {expr!r}")
    at, op = found[0]
    left, right = expr[:at].strip(), expr[at + len(op) :].strip()
    try:
        threshold = float(right)
    except ValueError:
        raise ValueError(f"the right side of {op} is not a number: {expr!r}") from None
    if not left:
        raise ValueError(f"no left side: {expr!r}")
    return left, op, threshold


def _mask(expr: str) -> str:
    """``expr`` with strings and everything inside (), {} and [] blanked out, same length."""
    out: list[str] = []
    depth = 0
    quote: str | None = None
    escaped = False
    for char in expr:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = None
            out.append(" ")
        elif char in "\"'`":
            quote = char
            out.append(" ")
        elif char in "({[":
            depth += 1
            out.append(" ")
        elif char in ")}]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets: {expr!r}")
            out.append(" ")
        else:
            out.append(char if depth == 0 else " ")
    if depth or quote is not None:
        raise ValueError(f"unbalanced brackets or quotes: {expr!r}")
    return "".join(out)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords, labels and numbers left out).

    Names given as ``{__name__="..."}`` matchers are not seen: the deploy files use none.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _DURATION.sub(" ", text)  # offset 5m
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end() :]):
            continue
        names.add(name)
    return names
