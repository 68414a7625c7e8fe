"""Monitoring: the alert rules with promtool, the Grafana dashboards and how they are delivered.

The metric names both may use are the service's contract (the dev repo's serving/metrics.py):
a rule or a panel on a name the service does not export would stay silent forever.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from common import (
    BUILD,
    DASHBOARDS,
    ROOT,
    CheckFailed,
    dig,
    load_all,
    load_one,
    overlays,
    rendered,
    run,
    tool,
    write_all,
)

# Grafana's dashboard sidecar (kube-prometheus-stack: grafana.sidecar.dashboards) loads every
# ConfigMap with this label; monitoring/dashboards/kustomization.yaml sets it.
SIDECAR_LABEL = ("grafana_dashboard", "1")

# The service's metric contract (names the rules and dashboards may use).
SERVICE_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "prediction_score_bucket",
    "prediction_score_sum",
    "prediction_score_count",
    "model_info",
    "model_ready",
    "http_requests_in_flight",
    "http_requests_rejected_total",
    "feature_drift_psi",
    "score_drift_psi",
    "drift_last_run_timestamp_seconds",
}
PROMETHEUS_METRICS = {"up"}


PROMQL_WORDS = {
    # aggregations, functions and keywords that look like identifiers
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "histogram_quantile",
    "absent",
    "absent_over_time",
    "time",
    "vector",
    "scalar",
    "abs",
    "clamp_min",
    "clamp_max",
    "label_replace",
    "label_join",
    "changes",
    "resets",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "round",
    "ceil",
    "floor",
    "sort",
    "sort_desc",
    "timestamp",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (good enough for our own expressions)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def extract_rules() -> Path:
    docs = [
        d
        for d in load_all(ROOT / "k8s" / "base" / "prometheusrule.yaml")
        if d["kind"] == "PrometheusRule"
    ]
    if len(docs) != 1:
        raise CheckFailed("k8s/base/prometheusrule.yaml must hold exactly one PrometheusRule")
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "rules.yml"
    header = "# Generated from k8s/base/prometheusrule.yaml: edit that file.\n"
    write_all(out, [{"groups": docs[0]["spec"]["groups"]}], header)
    return out


def _recorded(groups: list[dict]) -> set[str]:
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def check_rules() -> str:
    promtool = tool("promtool")
    rules = extract_rules()
    run([promtool, "check", "rules", str(rules)])
    tests = sorted((ROOT / "monitoring" / "tests").glob("*.yml"))
    if not tests:
        raise CheckFailed("no rule unit tests in monitoring/tests/")
    run([promtool, "test", "rules", *map(str, tests)])
    groups = load_one(rules)["groups"]
    recorded = _recorded(groups)
    known = SERVICE_METRICS | PROMETHEUS_METRICS | recorded
    unknown = {n for g in groups for r in g["rules"] for n in metric_names(str(r["expr"]))} - known
    if unknown:
        raise CheckFailed(f"rules use metrics the service does not export: {sorted(unknown)}")
    alerts = sum(1 for g in groups for r in g["rules"] if "alert" in r)
    return (
        f"{alerts} alerts and {len(recorded)} recording rules: promtool check "
        f"+ {len(tests)} unit test file(s) pass"
    )


def _panels(items: Iterable[dict]) -> Iterable[dict]:
    for p in items:
        yield p
        yield from _panels(p.get("panels", []))


def dashboard_problems(name: str, dash: dict, known: set[str]) -> list[str]:
    """Panel ids unique, queries only on known metrics, every service metric on a panel."""
    problems = []
    panels = list(_panels(dash.get("panels", [])))
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        problems.append(f"{name}: duplicate panel ids")
    exprs = [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]
    exprs += [
        v["query"]["query"] if isinstance(v.get("query"), dict) else str(v.get("query", ""))
        for v in dash.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    ]
    if not exprs:
        problems.append(f"{name}: no queries")
    used = set()
    for e in exprs:
        used |= metric_names(re.sub(r"label_values\((.*),\s*\w+\)", r"\1", e))
    problems += [f"{name}: unknown metric {metric}" for metric in sorted(used - known)]
    missing = SERVICE_METRICS - used - {"http_request_duration_seconds_count"}
    if name == "model-service.json" and missing:
        problems.append(f"{name}: metrics without a panel: {sorted(missing)}")
    return problems


def delivered(env: str) -> dict[str, str]:
    """Key → JSON text of every ConfigMap the overlay renders for Grafana's sidecar."""
    label, value = SIDECAR_LABEL
    return {
        key: text
        for d in rendered(env)
        if d["kind"] == "ConfigMap" and (dig(d, "metadata.labels") or {}).get(label) == value
        for key, text in (d.get("data") or {}).items()
    }


def delivery_problems(env: str, boards: dict[str, dict]) -> list[str]:
    """Every dashboard reaches Grafana through GitOps, exactly as the file checked above."""
    shipped = delivered(env)
    where = f'{env}: ConfigMaps labelled {SIDECAR_LABEL[0]}="{SIDECAR_LABEL[1]}"'
    problems = []
    if missing := sorted(set(boards) - set(shipped)):
        problems.append(
            f"{where} do not carry {missing}: list them in the configMapGenerator of "
            "monitoring/dashboards/kustomization.yaml, which sets that label"
        )
    if extra := sorted(set(shipped) - set(boards)):
        problems.append(f"{where} carry {extra}, which are not in monitoring/dashboards/")
    for key in sorted(set(boards) & set(shipped)):
        try:
            same = json.loads(shipped[key]) == boards[key]
        except json.JSONDecodeError:
            same = False
        if not same:
            problems.append(f"{where}: {key} is not the JSON of monitoring/dashboards/{key}")
    return problems


def check_dashboards() -> str:
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        raise CheckFailed("no dashboards in monitoring/dashboards/")
    groups = load_one(extract_rules())["groups"]
    known = SERVICE_METRICS | PROMETHEUS_METRICS | _recorded(groups)
    boards, problems = {}, []
    for path in files:
        try:
            boards[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}: not JSON: {exc}")
    for name, dash in boards.items():
        problems += dashboard_problems(name, dash, known)
    envs = overlays()
    for env in envs:
        problems += delivery_problems(env, boards)
    if problems:
        raise CheckFailed("\n".join(problems))
    total = sum(len(list(_panels(d.get("panels", [])))) for d in boards.values())
    return (
        f"{len(boards)} dashboard(s), {total} panels, only known metrics; delivered as "
        f"ConfigMap in {', '.join(envs)}"
    )
