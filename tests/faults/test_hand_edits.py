"""End to end: a person edits Pipedrive by hand (through its API, as the web app does) while
the suite runs and across a restart of the writer; the user stays tracked, every gist ends
up with exactly one live activity under the user's live deal, and nothing is dead-lettered."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from sandbox.launch import Suite
from tests.e2e.conftest import url
from tests.faults.harness import (
    add_gists,
    dead_letters,
    gist_in,
    module_suite,
    pipedrive_state,
    track,
    wait_quiet,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.faults

suite = module_suite("hand-edits", REFRESH_INTERVAL_SECONDS="1")


def by_hand(suite: Suite, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    """One call to the Pipedrive API with the account's token, as a person's browser makes."""
    response = httpx.request(
        method,
        suite.env["PIPEDRIVE_API_URL"] + path,
        headers={"x-api-token": suite.env["API_TOKEN_PIPEDRIVE"]},
        json=body,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def live_gists(suite: Suite, login: str) -> dict[str, bool] | None:
    """Gist id → done on the user's one live deal, or None while it has none; one activity
    per gist (a second is an error)."""
    state = pipedrive_state(suite)
    deals = [
        d for d in state["deals"] if d["title"] == f"Gists for {login}" and not d["is_deleted"]
    ]
    if len(deals) != 1 or deals[0]["status"] != "open":
        return None
    found = Counter[str]()
    done: dict[str, bool] = {}
    for activity in state["activities"]:
        gist = gist_in(activity["note"])
        if activity["deal_id"] == deals[0]["id"] and not activity["is_deleted"] and gist:
            found[gist] += 1
            done[gist] = activity["done"]
    assert all(n == 1 for n in found.values()), found
    return done


def unseen(suite: Suite, login: str) -> int | None:
    response = httpx.get(f"{url(suite, 'gateway')}/api/users/{login}", timeout=10)
    return int(response.json()["unseen"]) if response.status_code == 200 else None


def test_hand_edits_are_put_right_across_a_restart(suite: Suite) -> None:
    login = f"hand-{uuid.uuid4().hex[:6]}"
    gists = add_gists(suite, login, 3)
    track(suite, login)
    wait_for(lambda: live_gists(suite, login) == dict.fromkeys(gists, False), what="3 activities")
    state = pipedrive_state(suite)
    [deal] = [d for d in state["deals"] if d["title"] == f"Gists for {login}"]

    # By hand: one activity marked done (a refresh notices it), then the deal deleted.
    [first] = [a for a in state["activities"] if gist_in(a["note"]) == gists[0]]
    by_hand(suite, "PATCH", f"/activities/{first['id']}", {"done": True})
    wait_for(lambda: unseen(suite, login) == 2, what="the activity done by hand seen")
    by_hand(suite, "DELETE", f"/deals/{deal['id']}")

    # The writer restarts: the user is still tracked, and so still polled.
    assert suite.stop("pipedrive_writer", signal.SIGTERM) == 0, suite.tail("pipedrive_writer")
    suite.start("pipedrive_writer")
    users = httpx.get(f"{url(suite, 'gateway')}/api/users", timeout=10).json()["users"]
    assert {"login": login, "unseen": 2} in users

    # A new gist: the deal is made again, the 3 gists added again once, the new one too.
    [fresh] = add_gists(suite, login, 1)
    expected = {gists[0]: True, gists[1]: False, gists[2]: False, fresh: False}
    wait_for(lambda: live_gists(suite, login) == expected, what="the deal made again", timeout=60)
    wait_quiet(suite)
    assert live_gists(suite, login) == expected
    assert dead_letters(suite) == []
    assert unseen(suite, login) == 3
