"""`make run` (sandbox.launch) as a person runs it: a service that dies is started again and
the simulators keep their data; Ctrl-C (SIGINT to the whole process group, as a terminal
sends it) stops every process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.suite import delete_topology, new_prefix, suite_env
from tests.waiting import wait_for

pytestmark = pytest.mark.processes

LOGIN = "supervised"


@dataclass
class Launch:
    popen: subprocess.Popen[bytes]
    out: Path
    env: dict[str, str]

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def pid_of(self, name: str) -> int:
        """The pid of the latest start of `name`, as the launcher printed it."""
        found = re.findall(rf"started {name} \(pid (\d+),", self.text())
        assert found, self.text()
        return int(found[-1])

    def url(self, setting: str) -> str:
        return f"http://127.0.0.1:{self.env[setting]}"


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group (zombies are gone once reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@pytest.fixture
def launch(amqp_url: str, tmp_path: Path) -> Iterator[Launch]:
    env = suite_env(amqp_url, new_prefix("launch"), GISTSYNC_LOG_DIR=str(tmp_path / "logs"))
    for name in ("API_TOKEN_GITHUB", "API_TOKEN_PIPEDRIVE", "GATEWAY_API_KEY"):
        env.pop(name, None)  # sandbox mode: the launcher starts the simulators
    env.update(POLL_INTERVAL_SECONDS="1")
    out = tmp_path / "launch.out"
    with out.open("wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "sandbox.launch"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a Ctrl-C of its own, never pytest's
        )
    try:
        yield Launch(popen, out, env)
    finally:
        if popen.poll() is None or group_members(popen.pid):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(10)
        print(f"--- launcher output ---\n{out.read_text(errors='replace')[-3000:]}")
        asyncio.run(delete_topology(amqp_url, env["AMQP_PREFIX"]))


def answers_200(url: str) -> bool | None:
    try:
        return httpx.get(url, timeout=5).status_code == 200 or None
    except httpx.HTTPError:
        return None  # not listening yet


def activities(launch: Launch) -> list[dict[str, Any]]:
    state = httpx.get(launch.url("SANDBOX_PIPEDRIVE_PORT") + "/_sandbox/state", timeout=10)
    found: list[dict[str, Any]] = state.json()["activities"]
    return found


def test_a_killed_service_is_restarted_and_ctrl_c_stops_everything(launch: Launch) -> None:
    wait_for(lambda: "gistsync is up" in launch.text() or None, "the suite up", 120)
    github = launch.url("SANDBOX_GITHUB_PORT")
    gateway = launch.url("GATEWAY_PORT")
    added = httpx.post(f"{github}/_sandbox/users/{LOGIN}/gists/bulk", json={"count": 2}, timeout=10)
    assert added.status_code == 201, added.text
    tracked = httpx.post(f"{gateway}/api/users", json={"login": LOGIN}, timeout=15)
    assert tracked.status_code == 202, tracked.text
    wait_for(lambda: len(activities(launch)) == 2 or None, "2 activities", 60)

    writer = launch.pid_of("pipedrive_writer")
    os.kill(writer, signal.SIGKILL)
    wait_for(
        lambda: "pipedrive_writer exited (code -9); restarting it in" in launch.text() or None,
        "the exit reported",
        30,
    )
    wait_for(lambda: launch.pid_of("pipedrive_writer") != writer or None, "a restart", 30)
    ready = launch.url("PIPEDRIVE_WRITER_PORT") + "/readyz"
    wait_for(lambda: answers_200(ready), "writer ready", 60)

    # The simulators kept their data: the user's gists and what the writer made of them.
    gists = httpx.get(f"{github}/users/{LOGIN}/gists", timeout=10)
    assert len(gists.json()) == 2
    assert len(activities(launch)) == 2
    # And the restarted writer works: a new gist becomes a third activity.
    new = httpx.post(f"{github}/_sandbox/users/{LOGIN}/gists/bulk", json={"count": 1}, timeout=10)
    assert new.status_code == 201, new.text
    wait_for(lambda: len(activities(launch)) == 3 or None, "the third activity", 60)

    os.killpg(launch.popen.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert launch.popen.wait(60) == 0
    assert "stopped" in launch.text().splitlines()[-1]
    wait_for(lambda: not group_members(launch.popen.pid) or None, "no process left", 10)
