"""A broker that is not there when the suite starts: every service waits for it as long as
it takes, alive and not ready, the gateway answering 503 problems on its port; one warning
per service names the broker (never its password); once the broker is up, everything works.

The node comes up only after each service has failed to connect several times (counted by
`gistsync_broker_connect_failures_total`, not by the clock). That the wait has no end at
all is proven on a fake clock in `tests/common/test_service.py`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from gistsync.broker import Broker
from gistsync.contracts import PollNow
from sandbox.launch import SERVICES, Suite
from tests.conftest import need
from tests.faults.harness import add_gists, metric, suite_env, track, wait_converged
from tests.faults.node import RabbitNode, server_script
from tests.suite import new_prefix
from tests.waiting import eventually, wait_for

WAITING = "not reachable; waiting for it"
FAILED_TRIES = 4  # each service's tries before the node starts: 0.5+1+2+4 s of backoff


@pytest.fixture
def late_node(tmp_path: Path) -> Iterator[RabbitNode]:
    script = server_script()
    if script is None:
        need("rabbitmq-server (Debian package rabbitmq-server) for a private node")
    assert script is not None
    (tmp_path / "rabbit").mkdir()
    node = RabbitNode(script, tmp_path / "rabbit")
    try:
        yield node
    finally:
        node.kill()


def metric_value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_services_wait_for_a_late_broker_then_work(late_node: RabbitNode, tmp_path: Path) -> None:
    suite = Suite(suite_env(late_node.url, LOG_LEVEL="INFO"), tmp_path / "logs")
    try:
        suite.start("sandbox")
        for name in SERVICES:
            suite.start(name, wait=False)

        # Meanwhile: alive, not ready; the gateway serves its port with 503 problems.
        for name in SERVICES:
            base = suite.url(name)

            def alive(base: str = base) -> bool | None:
                return status(base + "/healthz") == 200 or None

            def failing(name: str = name) -> bool | None:
                tries = metric(suite, name, "gistsync_broker_connect_failures_total")
                return tries >= FAILED_TRIES or None

            wait_for(alive, f"{name} alive", 60)
            wait_for(failing, f"{name} failed {FAILED_TRIES} times", 60)
            assert status(base + "/readyz") == 503
            assert suite.processes[name].running
        gateway = suite.url("gateway")
        api = httpx.get(gateway + "/api/users", timeout=10)
        assert api.status_code == 503, api.text
        assert api.headers["Content-Type"].startswith("application/problem+json")
        problem = api.json()
        assert problem["type"] == "urn:gistsync:problem:broker-unavailable"
        assert problem["status"] == 503 and problem["request_id"] == api.headers["X-Request-Id"]
        assert httpx.get(gateway + "/list", timeout=10).status_code == 503

        late_node.start()
        for name in SERVICES:
            suite.wait_ready(suite.processes[name], timeout=120)

        for name in SERVICES:
            text = suite.processes[name].log.read_text(errors="replace")
            warnings = [line for line in text.splitlines() if WAITING in line]
            assert len(warnings) == 1, (name, warnings)
            address = f"amqp://127.0.0.1:{late_node.port}/"
            assert address in warnings[0]
            assert "guest:guest" not in text and "Traceback" not in text
            assert "error when creating transport" not in text

        # A full flow: track a user, its gists become activities.
        gists = add_gists(suite, "late-broker-user", 2)
        track(suite, "late-broker-user")
        wait_converged(suite, dict.fromkeys(gists, "late-broker-user"), timeout=60)
    finally:
        suite.stop_all()
        for name in suite.processes:
            print(f"--- {name} log (tail) ---\n{suite.tail(name, 15)}")


async def test_a_broker_lost_later_is_one_warning_and_comes_back(
    late_node: RabbitNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gistsync.transport.connection")

    def back() -> list[logging.LogRecord]:
        return [r for r in caplog.records if str(r.msg).startswith("broker %s reachable again")]

    late_node.start()
    broker = Broker(late_node.url, prefix=new_prefix("lost"), service="lost")
    await broker.connect()
    try:
        late_node.kill()
        await eventually(lambda: not broker.ready, 30, "the loss noticed")
        await eventually(
            lambda: metric_value("gistsync_broker_connected") == 0, 30, "the gauge down"
        )
        late_node.start()
        await eventually(lambda: broker.ready, 90, "reconnected")
        await eventually(lambda: len(back()) == 1, 30, "said it is back")
        await broker.publish(PollNow())
    finally:
        await broker.close(grace=1)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    ours = [r.getMessage() for r in loud if r.name == "gistsync.transport.connection"]
    address = f"amqp://127.0.0.1:{late_node.port}/"
    assert ours == [f"lost the broker {address}; reconnecting (not ready meanwhile)"]
    # The client libraries' one line per failed reconnect try is gone (their own one-off
    # lines about the lost connection itself remain).
    tries = ("Connection attempt", "Reconnect attempt", "error when creating transport")
    assert not [r for r in caplog.records if str(r.msg).startswith(tries)]
    assert len(back()) == 1
