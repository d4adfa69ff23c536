"""The Prometheus configuration, the alert rules and the Alertmanager routes, checked by
promtool and amtool themselves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need
from tests.monitor.monitoring import ALERTMANAGER_DIR, PROMETHEUS_DIR, load_yaml

# The receiver each severity must reach (alertmanager.yml routes by the severity label).
SEVERITIES = {"page": "page", "ticket": "ticket"}


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        need(f"{name} (Debian package {package})")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return tool("amtool", "prometheus-alertmanager")


def run(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def rules() -> list[dict[str, object]]:
    return [
        rule
        for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
        for rule in group["rules"]
    ]


def test_every_alert_has_a_unit_test() -> None:
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    names = [str(rule["alert"]) for rule in rules() if "alert" in rule]
    assert names, "no alert rules found"
    missing = [name for name in names if f"alertname: {name}" not in tests]
    assert missing == []


def test_alertmanager_config_is_valid(amtool: str) -> None:
    result = run(amtool, "check-config", "alertmanager.yml", cwd=ALERTMANAGER_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_reaches_the_receiver_of_its_severity(amtool: str) -> None:
    for rule in rules():
        labels = rule.get("labels")
        assert isinstance(labels, dict), f"{rule.get('alert')}: no labels"
        severity = labels.get("severity")
        assert severity in SEVERITIES, f"{rule.get('alert')}: severity {severity!r}"
        result = run(
            amtool,
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            f"--verify.receivers={SEVERITIES[severity]}",
            f"alertname={rule['alert']}",
            f"severity={severity}",
            cwd=ALERTMANAGER_DIR,
        )
        assert result.returncode == 0, f"{rule['alert']}: {result.stdout}{result.stderr}"


def test_prometheus_sends_alerts_to_alertmanager() -> None:
    """docker-compose.yml's Alertmanager, on the port it listens on (test_compose checks the
    service exists)."""
    alerting = load_yaml(PROMETHEUS_DIR / "prometheus.yml")["alerting"]
    targets = [
        target
        for manager in alerting["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]
