"""The predecessor's demo, end to end, on real processes and a real broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from sandbox.launch import Suite
from tests.e2e.conftest import POLL_INTERVAL, url
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


def pipedrive(suite: Suite) -> Json:
    state: Json = httpx.get(url(suite, "pipedrive") + "/_sandbox/state").json()
    return state


def new_gist(suite: Suite, login: str, description: str) -> str:
    response = httpx.post(
        f"{url(suite, 'github')}/_sandbox/users/{login}/gists",
        json={"description": description, "files": {"note.md": {"content": "# hi"}}},
    )
    assert response.status_code == 201, response.text
    gist_id: str = response.json()["id"]
    return gist_id


def deal_of(state: Json, login: str) -> Json | None:
    deals = [d for d in state["deals"] if d["title"] == f"Gists for {login}"]
    assert len(deals) <= 1, deals
    return deals[0] if deals else None


def activities_of(state: Json, deal: Json) -> list[Json]:
    return [a for a in state["activities"] if a["deal_id"] == deal["id"]]


def show(suite: Suite, login: str) -> str:
    response = httpx.get(url(suite, "gateway") + "/show", params={"user": login})
    assert response.status_code == 200, response.text
    return response.text


def test_the_predecessors_demo(suite: Suite) -> None:
    login = f"Demo-{uuid.uuid4().hex[:6]}"
    first = [new_gist(suite, login, f"gist number {i}") for i in range(3)]

    added = httpx.get(url(suite, "gateway") + "/new", params={"user": login.lower()})
    assert added.status_code == 202, added.text
    assert f"Now tracking {login}" in added.text

    def three_activities() -> list[Json] | None:
        state = pipedrive(suite)
        deal = deal_of(state, login)
        found = activities_of(state, deal) if deal else []
        return found if len(found) == 3 else None

    activities = wait_for(three_activities, what="3 activities")
    state = pipedrive(suite)
    [org] = [o for o in state["organizations"] if o["name"] == "GITHUB_GISTS"]
    deal = deal_of(state, login)
    assert deal is not None
    [person] = [p for p in state["persons"] if p["name"] == login]
    assert deal["org_id"] == org["id"]
    assert deal["person_id"] == person["id"]
    assert sorted(gid for gid in first if any(gid in a["note"] for a in activities)) == sorted(
        first
    )
    assert all(a["done"] is False for a in activities)

    page = show(suite, login)
    assert "3 new gists" in page
    assert all(f"gist number {i}" in page for i in range(3))
    wait_for(
        lambda: all(a["done"] for a in activities_of(pipedrive(suite), deal)),
        what="the 3 activities marked done",
    )
    assert "No new gists" in show(suite, login)

    later = new_gist(suite, login, "a fresh one")
    created = time.monotonic()
    wait_for(
        lambda: len(activities_of(pipedrive(suite), deal)) == 4,
        timeout=2 * POLL_INTERVAL + 3,
        what="the new gist's activity within two poll intervals",
    )
    elapsed = time.monotonic() - created
    page = show(suite, login)
    assert "1 new gist for" in page
    assert "a fresh one" in page
    assert later in page  # the link to the gist
    print(f"new gist became an activity in {elapsed:.2f} s")

    listed = httpx.get(url(suite, "gateway") + "/list").json()
    assert listed["success"] is True
    assert login in listed["data"]


def test_an_unknown_user_is_404_and_creates_nothing(suite: Suite) -> None:
    before = pipedrive(suite)
    response = httpx.get(url(suite, "gateway") + "/new", params={"user": "no-such-user-x"})
    assert response.status_code == 404
    assert "There is no GitHub user no-such-user-x" in response.text
    time.sleep(1)
    after = pipedrive(suite)
    assert len(after["persons"]) == len(before["persons"])
    assert len(after["deals"]) == len(before["deals"])


def test_adding_a_user_twice_in_any_case_gives_one_person_and_one_deal(suite: Suite) -> None:
    login = f"Twice-{uuid.uuid4().hex[:6]}"
    new_gist(suite, login, "only one")
    gateway = url(suite, "gateway") + "/new"
    statuses = [
        httpx.get(gateway, params={"user": name}).status_code for name in (login, login.lower())
    ]
    assert statuses[0] == 202
    assert statuses[1] in (200, 202)  # 202 while the first is still being written
    wait_for(lambda: deal_of(pipedrive(suite), login), what="the deal")
    assert httpx.get(gateway, params={"user": login.upper()}).status_code == 200
    time.sleep(1)
    state = pipedrive(suite)
    assert [p["name"] for p in state["persons"]].count(login) == 1
    assert [d["title"] for d in state["deals"]].count(f"Gists for {login}") == 1
    assert all(p["name"].lower() != login.lower() or p["name"] == login for p in state["persons"])
