"""deploy/ as files that match the code: the compose file against the compose specification,
and every metric the Grafana dashboard queries against what the running service exposes.
(Docker cannot run here; these are the parts that can be checked without it.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from app_harness import BIN, Served
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import records

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mlrepo.json"
COMPOSE = DEPLOY / "docker-compose.yml"
# Grafana's own variables, replaced by Grafana before Prometheus sees the query.
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    # The compose-spec schema vendored by check-jsonschema (from compose-spec/compose-spec).
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_compose_file_follows_the_compose_specification() -> None:
    done = _check_compose(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    broken["services"]["service"]["depends_on"]["postgres"]["condition"] = "when_ready"
    broken["services"]["app"]["prots"] = ["8501:8501"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    done = _check_compose(path)
    assert done.returncode == 1
    assert "when_ready" in done.stdout and "prots" in done.stdout


def test_the_compose_file_names_files_that_exist() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name in ("service", "app"):
        build = compose["services"][name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["service:8000"]
    service = (DEPLOY / "service.Dockerfile").read_text(encoding="utf-8")
    assert "USER mlrepo" in service and "HEALTHCHECK" in service


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names of every selector in a PromQL expression (raises on a syntax error)."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_the_parser_finds_the_names_and_rejects_bad_promql() -> None:
    assert metric_names('sum(rate(a_total{x="1"}[5m])) / on() group_left b') == {"a_total", "b"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(a_total[5m])")


def test_the_dashboard_shows_what_the_issue_asks() -> None:
    titles = {title for title, _ in dashboard_queries()}
    assert {
        "Request rate",
        "Error rate",
        "Prediction latency p50 / p95 / p99",
        "Predictions by class",
        "Model version",
        "Drift share",
    } <= titles
    latency = [e for t, e in dashboard_queries() if t.startswith("Prediction latency")]
    assert [e.split(",")[0] for e in latency] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]


def test_every_dashboard_metric_is_one_the_running_service_exposes(served: Served) -> None:
    client = served.server.client
    # Labelled series appear once used: predict, and be refused once.
    assert client.post("/predict", json=records(served.project.features.head(1))[0]).is_success
    assert client.post("/predict", json={}).status_code == 422
    exposed = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }
    queries = dashboard_queries()
    assert len(queries) >= 10
    used = {name for _, expr in queries for name in metric_names(expr)}
    missing = sorted(used - exposed)
    assert not missing, f"the dashboard queries metrics the service does not expose: {missing}"
