"""The monitoring, proven live: the suite in sandbox mode, a real Prometheus running the repo's
configuration and alert rules (targets rewritten to the local ports), a short workload that
also makes the failures the error panels show. Then every target must be up, every alert rule
and dashboard query must evaluate, every dashboard query must return data, and every service's
/metrics must pass `promtool check metrics`.

The broker is a private RabbitMQ node (tests/faults/node.py) with the rabbitmq_prometheus
plugin on a port of its own: the test needs nothing enabled on the machine's broker. Alert
delivery to Alertmanager is proven by the compose run (tests/deploy/compose)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from gistsync.broker import Topology
from sandbox.launch import SERVICES, Suite
from tests.conftest import need
from tests.faults.node import RabbitNode, server_script, sweep_stale
from tests.monitor.monitoring import (
    PROMETHEUS_DIR,
    Query,
    alert_queries,
    concrete,
    dashboard_queries,
    load_yaml,
)
from tests.suite import free_port, new_prefix, running, suite_env
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

SCRAPE_INTERVAL = "1s"
# Dashboard queries allowed to return no data after the short run, each with its reason.
# Prefer making the workload produce the data; the list is printed on every run.
NO_DATA_EXPECTED: dict[str, str] = {}

T = TypeVar("T")


@dataclass
class Stack:
    suite: Suite
    prometheus: str
    amqp_url: str
    prefix: str

    def url(self, name: str) -> str:
        return self.suite.url(name)

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        return body


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        need("the prometheus binary (Debian package prometheus)")
    assert path is not None
    return path


@dataclass
class MetricsNode(RabbitNode):
    """A private node that also serves rabbitmq_prometheus, on 127.0.0.1 and a free port."""

    metrics_port: int = field(default_factory=free_port)

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        Path(env["RABBITMQ_ENABLED_PLUGINS_FILE"]).write_text("[rabbitmq_prometheus].\n")
        # The whole config file: the node's own listener (as the parent writes it) and the
        # metrics listener, so that neither takes a shared port.
        Path(env["RABBITMQ_CONFIG_FILE"]).write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "prometheus.tcp.ip = 127.0.0.1\n"
            f"prometheus.tcp.port = {self.metrics_port}\n"
        )
        return env

    @property
    def metrics(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsNode]:
    script = server_script()
    if script is None:
        need("rabbitmq-server (Debian package rabbitmq-server) for the test's own node")
    assert script is not None
    sweep_stale()
    node = MetricsNode(script, tmp_path_factory.mktemp("rabbit"))
    try:
        node.start()
        wait_for(lambda: answers(f"http://{node.metrics}/metrics"), "rabbitmq_prometheus", 30)
        yield node
    finally:
        node.kill()


def local_config(env: dict[str, str], rabbitmq: str) -> dict[str, Any]:
    """monitor/prometheus/prometheus.yml with compose's service names replaced by the local
    processes (a DNS lookup of a name becomes its one local address), a 1 s scrape and
    evaluation interval, the rule files by absolute path, and no Alertmanager."""
    config: dict[str, Any] = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config.pop("alerting")
    config["global"].update(
        scrape_interval=SCRAPE_INTERVAL,
        scrape_timeout=SCRAPE_INTERVAL,
        evaluation_interval=SCRAPE_INTERVAL,
    )
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    local = {
        "gateway": f"127.0.0.1:{env['GATEWAY_OPS_PORT']}",
        "github_poller": f"127.0.0.1:{env['GITHUB_POLLER_PORT']}",
        "pipedrive_writer": f"127.0.0.1:{env['PIPEDRIVE_WRITER_PORT']}",
        "rabbitmq": rabbitmq,
    }
    for job in config["scrape_configs"]:
        for dns in job.pop("dns_sd_configs", []):
            targets = [f"{name}:{dns['port']}" for name in dns["names"]]
            job.setdefault("static_configs", []).append({"targets": targets})
        for static in job["static_configs"]:
            hosts = [target.rsplit(":", 1)[0] for target in static["targets"]]
            unknown = [host for host in hosts if host not in local]
            assert unknown == [], f"no local address for the targets {unknown}: add them here"
            static["targets"] = [local[host] for host in hosts]
    return config


def start_prometheus(
    binary: str, config: dict[str, Any], directory: Path
) -> tuple[subprocess.Popen[bytes], str]:
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, f"http://{address}"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def stack(
    broker: MetricsNode,
    prometheus_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    amqp_url = broker.url
    prefix = new_prefix("monitor")
    env = suite_env(
        amqp_url,
        prefix,
        PARTITIONS="2",
        POLL_INTERVAL_SECONDS="1",
        RETRY_BASE_SECONDS="0.2",
        RETRY_MAX_SECONDS="1",
        # The workload makes GitHub fail and rate limit: recover within the test's time.
        GITHUB_RATE_LIMIT_BACKOFF_SECONDS="1",
        POLL_FAILURE_BACKOFF_MAX_SECONDS="2",
    )
    directory = tmp_path_factory.mktemp("monitor")
    prometheus, prometheus_url = start_prometheus(
        prometheus_binary, local_config(env, broker.metrics), directory
    )
    try:
        with running(env, directory / "logs", tail=10) as suite:

            def prometheus_ready() -> bool:
                if prometheus.poll() is not None:
                    log = (directory / "prometheus.log").read_text()
                    raise AssertionError(f"prometheus exited:\n{log[-3000:]}")
                return answers(f"{prometheus_url}/-/ready")

            wait_for(prometheus_ready, "Prometheus ready")
            stack = Stack(suite, prometheus_url, amqp_url, prefix)
            run_workload(stack)
            yield stack
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(10)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
        print("--- prometheus log (tail) ---")
        print("\n".join((directory / "prometheus.log").read_text().splitlines()[-10:]))


# --- the workload --------------------------------------------------------------------------


def metric(url: str, name: str) -> float:
    """The sum of a service's samples named `name`, read from its /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def activities(stack: Stack) -> int:
    state = httpx.get(f"{stack.url('pipedrive')}/_sandbox/state", timeout=5).json()
    return len(state["activities"])


def faults(stack: Stack, simulator: str, **values: object) -> None:
    response = httpx.patch(
        f"{stack.url(simulator)}/_sandbox/config", json={"faults": values}, timeout=5
    )
    assert response.status_code == 200, response.text


async def publish_poison(amqp_url: str, prefix: str) -> None:
    """A command that is not even JSON: the writer dead-letters it at once."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology(prefix).bus)
        message = aio_pika.Message(b"this is not JSON", content_type="application/json")
        await exchange.publish(message, routing_key="command.track_user.p0", mandatory=True)


def run_workload(stack: Stack) -> None:
    """Two users with gists through the gateway, then each kind of failure a panel shows."""
    gateway, github = stack.url("gateway"), stack.url("github")
    tag = uuid.uuid4().hex[:6]
    users = [f"mon-{tag}-a", f"mon-{tag}-b"]
    with httpx.Client(timeout=30) as http:
        for login in users:
            created = http.post(f"{github}/_sandbox/users/{login}/gists/bulk", json={"count": 3})
            assert created.status_code in (200, 201), created.text
        for login in users:
            added = http.get(f"{gateway}/new", params={"user": login})
            assert added.status_code == 202, added.text
        wait_for(lambda: activities(stack) >= 6, "6 activities in Pipedrive")
        assert http.get(f"{gateway}/show", params={"user": users[0]}).status_code == 200
        assert http.get(f"{gateway}/list").status_code == 200
        assert http.get(f"{gateway}/fetch").status_code == 200
        # The client's mistakes: counted by status, not shown as errors of the service.
        assert http.get(f"{gateway}/new", params={"user": "no_such"}).status_code == 400
        assert http.get(f"{gateway}/show", params={"user": f"nobody-{tag}"}).status_code == 404

        # A dead letter.
        asyncio.run(publish_poison(stack.amqp_url, stack.prefix))
        writer = stack.url("pipedrive_writer")
        wait_for(lambda: metric(writer, "gistsync_dead_letters_total") >= 1, "a dead letter")

        # Pipedrive answers 429 once; the writer waits its Retry-After and creates the activity.
        faults(stack, "pipedrive", rate_limit_burst=1)
        gist = {"description": "late", "files": {"late.md": {"content": "# late"}}}
        assert http.post(f"{github}/_sandbox/users/{users[1]}/gists", json=gist).is_success
        wait_for(lambda: activities(stack) >= 7, "the 7th activity, after a 429")

        # GitHub rate limits the poller once, which pauses and goes on.
        poller = stack.url("github_poller")
        faults(stack, "github", rate_limit_burst=1)
        wait_for(lambda: metric(poller, "gistsync_github_rate_limited_total") >= 1, "a GitHub 429")

        # GitHub fails: the poller answers the user_exists query with an error, the gateway 502.
        faults(stack, "github", error_rate=1.0)
        try:
            failed = http.get(f"{gateway}/new", params={"user": f"late-{tag}"})
            assert failed.status_code >= 500, failed.text
        finally:
            faults(stack, "github", error_rate=0.0)


# --- the checks ------------------------------------------------------------------------------


def test_every_target_is_up(stack: Stack) -> None:
    jobs = {
        job["job_name"] for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
    }

    def targets() -> list[dict[str, Any]] | None:
        body = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=5).json()
        active: list[dict[str, Any]] = body["data"]["activeTargets"]
        return active if all(target["health"] == "up" for target in active) else None

    try:
        active = wait_for(targets, "every target up", timeout=15)
    except AssertionError:
        body = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=5).json()
        down = [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
            for t in body["data"]["activeTargets"]
            if t["health"] != "up"
        ]
        raise AssertionError(f"targets not up: {down}") from None
    assert {target["labels"]["job"] for target in active} == jobs


def test_every_service_says_what_it_runs(stack: Stack) -> None:
    """gistsync_build_info, scraped from each service's ops port (the gateway's included)."""
    result = stack.query("gistsync_build_info")["data"]["result"]
    builds = {series["metric"]["job"]: series["metric"] for series in result}
    assert set(builds) == set(SERVICES)
    assert {labels["version"] for labels in builds.values()} == {metadata.version("gistsync")}
    assert len({labels["revision"] for labels in builds.values()}) == 1, builds


def evaluation_errors(stack: Stack, queries: list[Query]) -> list[str]:
    errors = []
    for query in queries:
        body = stack.query(concrete(query.expr))
        if body.get("status") != "success":
            errors.append(f"{query.name}: {body.get('error')}")
    return errors


def test_every_alert_rule_evaluates(stack: Stack) -> None:
    assert evaluation_errors(stack, alert_queries()) == []

    def evaluated() -> list[dict[str, Any]] | None:
        body = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()
        rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for(evaluated, "every rule evaluated once", timeout=10)
    assert {rule["name"] for rule in rules} == {query.title for query in alert_queries()}
    assert [f"{r['name']}: {r['lastError']}" for r in rules if r["health"] != "ok"] == []


def test_every_dashboard_query_evaluates_and_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert evaluation_errors(stack, queries) == []
    print("dashboard queries allowed to return no data:", NO_DATA_EXPECTED or "none")

    def empty() -> list[str]:
        return [
            query.name
            for query in queries
            if query.name not in NO_DATA_EXPECTED
            and not stack.query(concrete(query.expr))["data"]["result"]
        ]

    # The last counters of the workload need two scrapes before rate() sees them.
    deadline = time.monotonic() + 15
    while (missing := empty()) and time.monotonic() < deadline:
        time.sleep(1)
    assert missing == []


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_pass_promtool_check(stack: Stack, service: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        need("promtool (Debian package prometheus)")
    assert promtool is not None
    text = httpx.get(f"{stack.suite.ops_url(service)}/metrics", timeout=5).text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not problems, f"{service}:\n{problems}"
