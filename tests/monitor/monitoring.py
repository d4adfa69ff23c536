"""What the monitoring and deployment tests share: the repository's files, read as the tools
that consume them read them, and what the code itself says (settings, defaults, metrics)."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from prometheus_client import REGISTRY
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import gateway.metrics
import gistsync.broker
import github_poller.metrics
import pipedrive_writer.metrics
import sandbox.__main__
from gistsync.tracing import DEPLOYMENT_VARIABLES

REPO = Path(__file__).parents[2]
PROMETHEUS_DIR = REPO / "monitor" / "prometheus"
ALERTMANAGER_DIR = REPO / "monitor" / "alertmanager"
GRAFANA_DIR = REPO / "monitor" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

SERVICES = ("gateway", "github_poller", "pipedrive_writer")


def loaded_settings(service: str) -> type[BaseSettings]:
    """The settings class `python -m service` passes to `load(...)` at start."""
    module = importlib.import_module(f"{service}.__main__")
    names = set(re.findall(r"\bload\((\w+)\)", inspect.getsource(module)))
    assert len(names) == 1, f"{service}.__main__ loads {names or 'no settings'}"
    cls = getattr(module, names.pop())
    assert isinstance(cls, type) and issubclass(cls, BaseSettings), cls
    return cls


SETTINGS: dict[str, type[BaseSettings]] = {
    service: loaded_settings(service) for service in SERVICES
}
# The Dockerfile's HEALTHCHECK reads it; compose sets it to each service's port.
HEALTH_PORT = "HEALTH_PORT"
# Modules whose import registers every gistsync metric.
METRIC_MODULES = (gistsync.broker, gateway.metrics, github_poller.metrics, pipedrive_writer.metrics)

# Grafana's built-in variables, made concrete for Prometheus' HTTP API and promtool.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def load_yaml(path: Path) -> Any:
    """YAML as compose and Prometheus read it: anchors resolved, merge keys (<<) applied."""
    return yaml.safe_load(path.read_text())


# --- the code's settings -------------------------------------------------------------------


def env_fields(cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The environment variables a pydantic-settings class reads, with their fields."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, FieldInfo] = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names[(alias or prefix + name).upper()] = field
    return names


def sandbox_env() -> dict[str, str]:
    """The sandbox's variables (it reads os.environ itself) with their defaults, as written in
    `sandbox.__main__`: `env.get("NAME", default)`."""
    source = inspect.getsource(sandbox.__main__)
    found: dict[str, str] = {}
    for name, default in re.findall(r'env\.get\(\s*"(SANDBOX_\w+)"\s*,\s*([^)]+?)\s*\)', source):
        if default.startswith('"'):
            found[name] = default.strip('"')
        else:  # a constant of the module, e.g. DEFAULT_GITHUB_TOKEN
            found[name] = str(getattr(sandbox.__main__, default))
    assert found, "no SANDBOX_* variable found in sandbox.__main__"
    return found


def code_settings() -> dict[str, set[str]]:
    """Every process's environment variables, by compose service name."""
    names = {
        service: set(env_fields(cls)) | set(DEPLOYMENT_VARIABLES)
        for service, cls in SETTINGS.items()
    }
    names["sandbox"] = set(sandbox_env())
    return names


def all_setting_names() -> set[str]:
    return set().union(*code_settings().values())


def listen_ports(service: str) -> dict[str, int]:
    """The ports a service listens on by default, by setting: `<SERVICE>_PORT`, and
    `<SERVICE>_OPS_PORT` when it has one (the gateway)."""
    fields = env_fields(SETTINGS[service])
    wanted = re.compile(rf"{service.upper()}(_OPS)?_PORT")
    return {
        name: int(str(field.default)) for name, field in fields.items() if wanted.fullmatch(name)
    }


def ops_port(service: str) -> int:
    """Where a service answers /metrics, /healthz and /readyz: its ops port."""
    ports = listen_ports(service)
    return ports.get(f"{service.upper()}_OPS_PORT", ports[f"{service.upper()}_PORT"])


# --- metrics ---------------------------------------------------------------------------------


def code_metric_names() -> set[str]:
    """Every sample name the services can export, e.g. foo_total, bar_bucket, bar_count."""
    assert METRIC_MODULES  # imported for their side effect: registering the metrics
    names: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum", ""),
    }
    for family in REGISTRY.collect():
        if family.name.startswith("gistsync_"):
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def metric_names_in(expr: str, prefixes: tuple[str, ...] = ("gistsync_", "rabbitmq_")) -> set[str]:
    """Metric names used by a PromQL expression (label values in quotes left out)."""
    bare = re.sub(r'"[^"]*"|`[^`]*`', '""', expr)
    return {
        name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if name.startswith(prefixes)
    }


# --- dashboards and alert rules ----------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard panel or an alert rule."""

    source: str  # "gistsync.json", "alerts.yml"
    title: str  # the panel's title or the alert's name
    ref: str  # the target's refId, or "" for a rule
    expr: str

    @property
    def name(self) -> str:
        return f"{self.source}: {self.title}" + (f" [{self.ref}]" if self.ref else "")


def dashboards() -> dict[str, dict[str, Any]]:
    boards = {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }
    assert boards, f"no dashboard in {DASHBOARDS_DIR}"
    return boards


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included, rows themselves left out."""
    found: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_queries() -> list[Query]:
    return [
        Query(name, panel["title"], target["refId"], target["expr"])
        for name, board in dashboards().items()
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def alert_queries() -> list[Query]:
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [
        Query("alerts.yml", rule.get("alert") or rule["record"], "", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def concrete(expr: str) -> str:
    """The expression with Grafana's variables replaced; any other variable is an error, as
    no dashboard defines one."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)
