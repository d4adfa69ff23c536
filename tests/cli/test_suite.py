"""The command line against the whole suite as real processes (the simulators and the three
services): `check` passes, and a user added with `users add` is polled, reaches the writer
and is listed with their unseen gists, then removed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from sandbox.launch import Suite
from tests.cli.conftest import SCRIPT, Run
from tests.suite import running, suite_env
from tests.waiting import wait_for

pytestmark = pytest.mark.processes


def gistsync(env: Mapping[str, str], *args: str) -> Run:
    done = subprocess.run(
        [str(SCRIPT), *args], env=dict(env), capture_output=True, text=True, timeout=60
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def suite(amqp_url: str, prefix: str, tmp_path: Path) -> Iterator[Suite]:
    env = suite_env(amqp_url, prefix, GISTSYNC_SECRETS_DIR=str(tmp_path / "none"))
    with running(env, tmp_path) as started:
        yield started


def test_users_and_check_against_the_running_suite(suite: Suite) -> None:
    env = suite.env
    github = suite.url("github") + "/_sandbox"
    created = httpx.post(
        f"{github}/users/OctoCat/gists", json={"files": {"a.py": {"content": "print(1)"}}}
    )
    assert created.status_code == 201, created.text

    check = gistsync(env, "check")
    assert check.code == 0, check.text

    added = gistsync(env, "users", "add", "octocat")
    assert added.code == 0, added.text
    assert added.out == "tracking OctoCat\n"

    def listed() -> str | None:
        run = gistsync(env, "users", "list")
        assert run.code == 0, run.text
        return run.out if "OctoCat" in run.out else None

    out = wait_for(listed, what="OctoCat listed")
    assert out.splitlines()[1].split() == ["OctoCat", "1"]
    again = gistsync(env, "users", "add", "OCTOCAT")
    assert (again.code, again.out) == (0, "already tracked: OctoCat\n")
    unknown = gistsync(env, "users", "add", "nobody")
    assert (unknown.code, unknown.err) == (1, "no GitHub user nobody\n")

    removed = gistsync(env, "users", "remove", "octocat")
    assert (removed.code, removed.out) == (0, "no longer tracking OctoCat\n")
    wait_for(lambda: "OctoCat" not in gistsync(env, "users", "list").out, what="OctoCat gone")

    dead = gistsync(env, "deadletters", "list")
    assert dead.code == 0, dead.text
    assert dead.out.splitlines() == ["ID  TYPE  QUEUE  FIRST SEEN  REASON"]
