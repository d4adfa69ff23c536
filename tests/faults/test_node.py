"""The sweep at the start of a fault run kills what killed runs left behind (their RabbitMQ
nodes, found by command line, and their services, found by environment), and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.faults.node import OWNER_ENV, OWNER_FLAG, sweep_stale

pytestmark = pytest.mark.faults
SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited: an owner that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for process in made:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_the_sweep_kills_only_what_dead_runs_left(
    dead_pid: int, spawned: list[subprocess.Popen[bytes]]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}
    node = subprocess.Popen([sys.executable, "-c", SLEEP, OWNER_FLAG, str(dead_pid)], env=env)
    service = subprocess.Popen([sys.executable, "-c", SLEEP], env={**env, OWNER_ENV: str(dead_pid)})
    ours = subprocess.Popen([sys.executable, "-c", SLEEP], env={**env, OWNER_ENV: str(os.getpid())})
    stranger = subprocess.Popen([sys.executable, "-c", SLEEP], env=env)
    spawned.extend([node, service, ours, stranger])

    killed = sweep_stale()

    assert {node.pid, service.pid} <= set(killed)
    assert node.wait(5) < 0 and service.wait(5) < 0  # by a signal
    assert ours.poll() is None and stranger.poll() is None
    assert ours.pid not in killed and stranger.pid not in killed
