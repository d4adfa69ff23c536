"""The whole suite as real processes: the simulators, the three services, a real broker."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launch import SERVICES, Suite, sandbox_env
from tests.conftest import delete_topology, free_port

POLL_INTERVAL = 1.0


@pytest.fixture(scope="module")
def suite(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = sandbox_env(os.environ, free_port(), free_port())
    env.update(
        AMQP_URL=amqp_url,
        AMQP_PREFIX=prefix,
        PARTITIONS="2",
        POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        GATEWAY_PORT=str(free_port()),
        GITHUB_POLLER_PORT=str(free_port()),
        PIPEDRIVE_WRITER_PORT=str(free_port()),
        RETRY_BASE_SECONDS="0.2",
        LOG_LEVEL="DEBUG",
    )
    suite = Suite(env, Path(tmp_path_factory.mktemp("logs")))
    try:
        for name in ("sandbox", *SERVICES):
            suite.start(name)
        yield suite
    finally:
        suite.stop_all()
        for name in suite.processes:
            print(f"--- {name} log (tail) ---\n{suite.tail(name, 15)}")
        asyncio.run(delete_topology(amqp_url, prefix))


def url(suite: Suite, name: str) -> str:
    return suite.url(name)
