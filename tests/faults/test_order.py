"""A user's gists become activities in gist order even when Pipedrive fails the first one:
the transport keeps the user's later gists waiting while the first is retried."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.launch import Suite
from tests.faults.harness import (
    QUICK_PIPEDRIVE_RETRIES,
    add_gists,
    calm,
    configure,
    gist_in,
    module_suite,
    pipedrive_state,
    requests_made,
    track,
    wait_converged,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.faults

NEW_GISTS = 5


# Enough attempts to outlast the outage; PREFETCH stays at its default (16), so every gist of
# the user is delivered while the first one fails.
suite = module_suite(
    "order",
    MAX_ATTEMPTS="40",
    RETRY_BASE_SECONDS="0.1",
    RETRY_MAX_SECONDS="0.5",
    **QUICK_PIPEDRIVE_RETRIES,
)


def polls(suite: Suite, login: str) -> int:
    stats = httpx.get(f"{suite.url('github')}/_sandbox/stats/polls", timeout=10).json()
    return int(stats.get(login.lower(), {}).get("count", 0))


def add_gist(suite: Suite, login: str, created_at: datetime) -> str:
    body = {
        "description": f"made {created_at.isoformat()}",
        "files": {"a.py": {"content": "1"}},
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
    }
    response = httpx.post(f"{suite.url('github')}/_sandbox/users/{login}/gists", json=body)
    assert response.status_code == 201, response.text
    gist_id: str = response.json()["id"]
    return gist_id


def failed(suite: Suite) -> list[int]:
    """Creates, and re-reads after a create of unknown outcome, that Pipedrive failed."""
    made = requests_made(suite, "pipedrive")
    return [made.get(route, {}).get("500", 0) for route in ("POST /activities", "GET /activities")]


def test_a_users_gists_keep_their_order_when_the_first_meets_a_pipedrive_5xx(
    suite: Suite,
) -> None:
    login = f"order-{uuid.uuid4().hex[:6]}"
    [first] = add_gists(suite, login, 1)
    track(suite, login)
    wait_converged(suite, {first: login}, timeout=30)

    configure(suite, "pipedrive", {"faults": {"error_rate": 1.0, "error_status": 500}})
    try:
        base = datetime.now(UTC) + timedelta(seconds=10)
        ids = [add_gist(suite, login, base + timedelta(seconds=n)) for n in range(NEW_GISTS)]
        seen = polls(suite, login)
        # Two full polls after the last gist: every new gist is published and delivered;
        # the first one's create failed and its retries re-read the user, failing too.
        wait_for(lambda: polls(suite, login) >= seen + 2, what="two polls after the gists")
        wait_for(
            lambda: failed(suite)[0] >= 1 and failed(suite)[1] >= 2,
            what="the first gist's create retried",
        )
    finally:
        calm(suite)

    wait_converged(suite, {first: login, **dict.fromkeys(ids, login)}, timeout=60)
    activities = sorted(pipedrive_state(suite)["activities"], key=lambda a: a["id"])
    assert [gist_in(a["note"]) for a in activities] == [first, *ids]
