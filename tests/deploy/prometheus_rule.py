"""deploy/k8s/base/alerts.yaml: monitor/prometheus/alerts.yml as a PrometheusRule, the way the
Prometheus Operator loads rules. kustomize reads no file outside its directory, so the rules
are copied; test_k8s checks that the copy says what the rules file says. After changing the
rules:

    .venv/bin/python -m tests.deploy.prometheus_rule
"""

from __future__ import annotations

from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.monitor.monitoring import PROMETHEUS_DIR, REPO, load_yaml

RULES = PROMETHEUS_DIR / "alerts.yml"
MANIFEST = REPO / "deploy" / "k8s" / "base" / "alerts.yaml"
HEADER = """\
# GENERATED from monitor/prometheus/alerts.yml by `python -m tests.deploy.prometheus_rule`:
# edit the rules there, then run it (tests/deploy/test_k8s.py fails while they differ).
# The Prometheus Operator loads it when your Prometheus' ruleSelector selects its labels.
"""


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Multi-line expressions as literal blocks, readable in review."""


def _string(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "gistsync", "labels": {"app.kubernetes.io/name": "gistsync"}},
        "spec": {"groups": load_yaml(RULES)["groups"]},
    }


def render() -> str:
    body: str = yaml.dump(prometheus_rule(), Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> None:
    MANIFEST.write_text(render())
    print(f"wrote {MANIFEST.relative_to(REPO)}")


if __name__ == "__main__":
    main()
