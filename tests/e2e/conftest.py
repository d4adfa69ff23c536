"""The whole suite as real processes: the simulators, the three services, a real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launch import Suite
from tests.suite import new_prefix, running, suite_env

POLL_INTERVAL = 1.0


@pytest.fixture(scope="module")
def suite(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    env = suite_env(
        amqp_url,
        new_prefix("e2e"),
        PARTITIONS="2",
        POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        RETRY_BASE_SECONDS="0.2",
        LOG_LEVEL="DEBUG",
    )
    with running(env, Path(tmp_path_factory.mktemp("logs"))) as suite:
        yield suite


def url(suite: Suite, name: str) -> str:
    return suite.url(name)
