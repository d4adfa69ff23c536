"""`/show` never loses a gist: when Pipedrive fails to mark the shown gists done, the same
gists are shown again next time; and once Pipedrive is back, replaying the dead-lettered
`mark_seen` commands (the operator's CLI) marks them, each exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import httpx
import pytest

from gistsync.contracts import GIST_ID_REGEX
from sandbox.launch import Suite
from tests.e2e.conftest import url
from tests.faults.harness import (
    QUICK_PIPEDRIVE_RETRIES,
    add_gists,
    configure,
    dead_letters,
    module_suite,
    pipedrive_state,
    requests_made,
    reset_stats,
    track,
    wait_quiet,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.faults


# Give up on a failing mark_seen quickly, so that its dead letter shows within a second.
suite = module_suite(
    "show",
    MAX_ATTEMPTS="2",
    RETRY_BASE_SECONDS="0.1",
    RETRY_MAX_SECONDS="0.2",
    **QUICK_PIPEDRIVE_RETRIES,
)


def show(suite: Suite, login: str) -> list[str]:
    """The gist ids on the page `/show` returns (from their links)."""
    response = httpx.get(f"{url(suite, 'gateway')}/show", params={"user": login}, timeout=15)
    assert response.status_code == 200, response.text
    links = re.findall(rf"https://gist\.github\.com/({GIST_ID_REGEX})", response.text)
    return sorted(set(links))


def done(suite: Suite, gist_ids: list[str]) -> list[bool]:
    activities = pipedrive_state(suite)["activities"]
    return [a["done"] for a in activities if any(f"gist:{g}<" in a["note"] for g in gist_ids)]


def mark_seen_letters(suite: Suite) -> list[str]:
    return [d.message_id for d in dead_letters(suite) if d.type == "command.mark_seen"]


def test_gists_stay_unseen_while_marking_fails_then_a_replay_marks_them(
    suite: Suite,
) -> None:
    login = f"show-{uuid.uuid4().hex[:6]}"
    gists = sorted(add_gists(suite, login, 3))
    track(suite, login)
    wait_for(lambda: len(done(suite, gists)) == 3, what="the 3 activities")

    configure(suite, "pipedrive", {"faults": {"error_rate": 1.0}})
    try:
        assert show(suite, login) == gists
        wait_for(lambda: len(mark_seen_letters(suite)) == 1, what="the failed mark_seen")
        assert done(suite, gists) == [False] * 3
        # Shown twice is acceptable; never shown is not.
        assert show(suite, login) == gists
        wait_for(lambda: len(mark_seen_letters(suite)) == 2, what="the second failed mark_seen")
        assert done(suite, gists) == [False] * 3
    finally:
        configure(suite, "pipedrive", {"faults": {"error_rate": 0.0}})

    # Pipedrive is back: the operator replays what died.
    reset_stats(suite, "pipedrive")
    letters = mark_seen_letters(suite)
    replay = subprocess.run(
        [sys.executable, "-m", "gistsync.deadletters", "replay", "--all"],
        env=suite.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert sorted(replay.stdout.split()) == sorted(["replayed"] * 2 + letters)
    wait_for(lambda: done(suite, gists) == [True] * 3, what="the 3 activities marked done")
    assert show(suite, login) == []
    wait_quiet(suite)
    # One PATCH per gist: the second replayed command found them done already.
    assert requests_made(suite, "pipedrive") == {"PATCH /activities/{id}": {"200": 3}}
    assert dead_letters(suite) == []
