"""Grafana provisioning and dashboards, checked without Grafana: structure, the datasource,
the metric names against the code, and every expression parsed by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import need
from tests.monitor.monitoring import (
    GRAFANA_DIR,
    alert_queries,
    code_metric_names,
    concrete,
    dashboard_queries,
    dashboards,
    load_yaml,
    metric_names_in,
    panels,
)

# What issue 6 asks the gistsync dashboard to show, each as a metric that must be on it.
REQUIRED_ON_GISTSYNC = {
    "request rate and errors": "gistsync_http_requests_total",
    "latency": "gistsync_http_request_duration_seconds_bucket",
    "message handling": "gistsync_messages_consumed_total",
    "gists discovered": "gistsync_gists_discovered_total",
    "activities created": "gistsync_activities_created_total",
    "end-to-end lag": "gistsync_gist_propagation_seconds_bucket",
    "effective poll interval": "gistsync_poll_interval_effective_seconds",
    "GitHub remaining budget": "gistsync_github_rate_limit_remaining",
    "Pipedrive remaining budget": "gistsync_pipedrive_daily_requests_left",
    "queue depths": "rabbitmq_detailed_queue_messages_ready",
    "dead letters": "gistsync_dead_letters_total",
    "Pipedrive tokens spent": "gistsync_pipedrive_tokens_spent_total",
    "tracked users": "gistsync_tracked_users",
}


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    config = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    [source] = config["datasources"]
    assert source["type"] == "prometheus"
    found: dict[str, Any] = source
    return found


def test_the_datasource_is_composes_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"] and datasource.get("isDefault") is True
    scrape = load_yaml(GRAFANA_DIR.parent / "prometheus" / "prometheus.yml")["global"]
    assert datasource["jsonData"]["timeInterval"] == scrape["scrape_interval"]


def test_dashboards_are_well_formed(datasource: dict[str, Any]) -> None:
    boards = dashboards()
    assert {"gistsync.json", "rabbitmq.json"} <= set(boards)
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(board):
            where = f"{name}: {panel.get('title')!r}"
            assert panel.get("title") and panel.get("description"), f"{where}: title, description"
            assert panel["datasource"]["uid"] == datasource["uid"], where
            targets = panel.get("targets", [])
            assert targets, f"{where}: no query"
            refs = [target["refId"] for target in targets]
            assert len(set(refs)) == len(refs), f"{where}: duplicate refIds"
            for target in targets:
                assert target.get("expr"), f"{where}: empty query"
                assert target["datasource"]["uid"] == datasource["uid"], where


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, board in dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']}"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{name}: {panel['title']} overlaps {other}"


def test_the_gistsync_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(
        *(metric_names_in(q.expr) for q in dashboard_queries() if q.source == "gistsync.json")
    )
    missing = {
        topic: metric for topic, metric in REQUIRED_ON_GISTSYNC.items() if metric not in used
    }
    assert missing == {}


def test_every_gistsync_metric_on_a_dashboard_or_in_a_rule_is_one_the_code_exports() -> None:
    exported = code_metric_names()
    unknown = {
        f"{query.name}: {name}"
        for query in dashboard_queries() + alert_queries()
        for name in metric_names_in(query.expr, ("gistsync_",))
        if name not in exported
    }
    assert unknown == set()


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool parses PromQL offline when it is given as recording rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        need("promtool (Debian package prometheus)")
    assert promtool is not None
    rules = [
        {"record": f"check:query_{i}", "expr": concrete(query.expr)}
        for i, query in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
