"""Pipedrive misbehaving: every gist still ends as exactly one activity."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from gistsync.contracts import TrackUser
from pipedrive_writer.__main__ import make_client
from pipedrive_writer.notes import parse_note
from tests.pipedrive_writer.conftest import Harness
from tests.pipedrive_writer.factories import discovered


def gist_ids(harness: Harness) -> Counter[str]:
    notes = (parse_note(a["note"]) for a in harness.state()["activities"])
    return Counter(note.gist_id for note in notes if note is not None)


async def test_rate_limits_errors_and_drops_never_duplicate_a_gist(harness: Harness) -> None:
    # Our limiter allows far more than the simulator does, so 429s really happen;
    # on top, 1 request in 10 fails with 500 and 1 in 20 loses its connection.
    harness.configure(
        {
            "limits": {
                "burst_limit": 4,
                "burst_window_seconds": 1.0,
                "search_burst_limit": 2,
                "search_window_seconds": 1.0,
            },
            "faults": {"error_rate": 0.1, "drop_rate": 0.05, "seed": 7},
        }
    )
    settings = harness.settings(
        pipedrive_burst_limit=100, pipedrive_search_burst_limit=100, max_attempts=12
    )
    await harness.start(settings)
    logins = ("ann", "bob", "cy")
    await harness.send(*(TrackUser(login=login) for login in logins), timeout=30)
    events = [discovered(n, login) for login in logins for n in range(1, 4)]
    await harness.send(*events, *events[:4], timeout=40)

    assert gist_ids(harness) == Counter({event.gist.id: 1 for event in events})
    state = harness.state()
    assert len(state["organizations"]) == 1
    assert sorted(p["name"] for p in state["persons"]) == list(logins)
    assert len(state["deals"]) == 3
    outcomes = Counter[str]()
    for codes in harness.requests().values():
        outcomes.update(codes)
    assert outcomes["429"] > 0
    assert outcomes["500"] > 0
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Sends requests on; the first answer to `method path` is lost after Pipedrive acted."""

    def __init__(self, method: str, path: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.target = (method, path)
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if (request.method, request.url.path) == self.target and not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v2/activities"),
        ("POST", "/api/v2/deals"),
        ("POST", "/api/v2/persons"),
        ("POST", "/api/v2/organizations"),
    ],
)
async def test_a_create_whose_answer_is_lost_is_not_made_twice(
    harness: Harness, method: str, path: str
) -> None:
    settings = harness.settings()
    transport = LoseFirstAnswer(method, path)
    await harness.start(settings, make_client(settings, transport=transport))
    await harness.send(TrackUser(login="alice"), discovered(1), discovered(2))
    assert transport.lost == 1
    state = harness.state()
    assert [len(state[kind]) for kind in ("organizations", "persons", "deals")] == [1, 1, 1]
    assert gist_ids(harness) == Counter({"alice0001": 1, "alice0002": 1})
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []
