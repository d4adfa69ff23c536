"""The fault suite's fixtures: one private RabbitMQ node per session, the switch of the long
run, and the convergence report printed at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.faults.harness import REPORTS
from tests.faults.node import RabbitNode, server_script, sweep_stale


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long run is a command of its own, not part of the suite: left out of the
    collection (not skipped) unless FAULTS_LONG=1 asks for it."""
    if os.environ.get("FAULTS_LONG") == "1":
        return
    long_runs = [item for item in items if item.get_closest_marker("faults_long")]
    if long_runs:
        config.hook.pytest_deselected(items=long_runs)
        items[:] = [item for item in items if item not in long_runs]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.section("fault suite: convergence after the last fault")
        for line in REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this session only: its own ports and data, SIGKILLed at the end."""
    script = server_script()
    if script is None:
        need("rabbitmq-server (Debian package rabbitmq-server) for the fault suite's own node")
    assert script is not None
    stale = sweep_stale()
    if stale:
        print(f"killed {len(stale)} processes left by killed fault runs: {stale}")
    node = RabbitNode(script, tmp_path_factory.mktemp("rabbit"))
    try:
        node.start()
        yield node
    finally:
        node.kill()
