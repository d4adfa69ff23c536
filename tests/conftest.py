"""Fixtures shared by every test: a real RabbitMQ and names isolated per test.

The broker is `AMQP_URL` if set, else the local one on 127.0.0.1:5672, else (only where a
Docker engine exists) a testcontainers RabbitMQ. Under CI=true a missing broker fails the
tests instead of skipping them.

Every test is marked by what it needs (`NEEDS` from its fixtures, `BY_PATH` from where it
lives, or by hand), so that `pytest -m "not broker and not browser and not processes and not
slow"` is the fast tier: no broker, no Chromium, no process started, nothing over ~5 s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gistsync.broker import Broker
from tests.suite import delete_topology, free_port

# `free_port` is re-exported for the tests that import it from here.
__all__ = ["BrokerFactory", "free_port", "need"]

LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TESTS = Path(__file__).parent

# A fixture a test uses (directly or not) → what the test needs.
NEEDS = {
    "amqp_url": "broker",
    "prefix": "broker",
    "brokers": "broker",
    "suite": "processes",
}
# Where a test lives → what it needs. Whole folders that start the suite, and the tests of
# other folders that start processes or Chromium without saying so.
BY_PATH: dict[str, tuple[str, ...]] = {
    "e2e": ("processes",),
    "e2e/test_browser.py": ("browser",),
    "faults": ("processes",),
    "scale": ("processes",),
    "monitor/test_live.py": ("processes",),
    "sandbox/test_sandbox_main.py": ("processes",),
    "github_poller/test_main.py": ("processes",),
    "pipedrive_writer/test_main.py": ("processes",),
}


def _needs_by_path(path: Path) -> set[str]:
    where = path.relative_to(TESTS).as_posix() if TESTS in path.parents else ""
    return {
        marker
        for prefix, markers in BY_PATH.items()
        if where == prefix or where.startswith(prefix + "/")
        for marker in markers
    }


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs = _needs_by_path(item.path)
        needs.update(NEEDS[f] for f in getattr(item, "fixturenames", ()) if f in NEEDS)
        for marker in sorted(needs - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), 2):
            return True
    except OSError:
        return False


def need(what: str) -> None:
    """Skip with the reason outside CI; fail under CI, where nothing may skip."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url = os.environ.get("AMQP_URL", LOCAL_BROKER)
    if reachable(url):
        yield url
        return
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:4-management") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"
    except Exception as exc:  # no Docker engine here either
        need(f"RabbitMQ at {url} (set AMQP_URL, start rabbitmq-server or Docker): {exc}")


@pytest.fixture
def prefix(amqp_url: str) -> Iterator[str]:
    """A fresh name prefix; its exchanges and queues are deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(delete_topology(amqp_url, name))


# Few partitions in tests: each test makes (and deletes) its own quorum queues.
PARTITIONS = 2


BrokerFactory = Callable[..., Broker]


@pytest.fixture
async def brokers(amqp_url: str, prefix: str) -> AsyncIterator[BrokerFactory]:
    """Makes connected-on-demand brokers on the test's prefix and closes them after."""
    made: list[Broker] = []

    def make(service: str = "test", **kwargs: object) -> Broker:
        kwargs.setdefault("partitions", PARTITIONS)
        broker = Broker(amqp_url, prefix=prefix, service=service, **kwargs)  # type: ignore[arg-type]
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close(grace=2)
