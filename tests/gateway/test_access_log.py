"""The access log: one JSON line per state change or refused credential, naming the route's
pattern and the credential's kind, never a credential; and every line logged while a
request is handled carries its correlation id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.security import API_KEY_HEADER, SESSION_COOKIE
from gistsync.logs import JsonFormatter
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import FakeServices, World

Json = dict[str, Any]


class Lines(logging.Handler):
    """Formats each record when it is logged, as the service's handler does: the request's
    fields are those of the moment the line is written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("gateway", secrets=[API_KEY]))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[Json]:
        return [json.loads(line) for line in self.lines]

    def access(self) -> list[Json]:
        return [e for e in self.entries() if e["logger"] == "gateway.access"]


@pytest.fixture
def logged() -> Iterator[Lines]:
    lines = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)
    yield lines
    root.removeHandler(lines)
    root.setLevel(level)


@pytest.fixture
async def keyed(start_gateway: StartGateway, peers: FakeServices) -> Client:
    world = World().serve(peers)
    world.add_user("octocat")
    return await start_gateway(gateway_api_key=API_KEY)


async def test_a_state_change_is_one_line_with_who_what_and_how_long(
    keyed: Client, logged: Lines
) -> None:
    response = await keyed.post(
        "/api/users",
        json={"login": "octocat"},
        headers={API_KEY_HEADER: API_KEY, "X-Request-Id": "req-create-1"},
    )
    assert response.status == 202, await response.text()
    [line] = logged.access()
    assert line["message"] == "POST /api/users 202"
    assert line["method"] == "POST"
    assert line["route"] == "/api/users"
    assert line["status"] == 202
    assert line["credential"] == "key"
    assert line["client"] == "127.0.0.1"
    assert line["correlation_id"] == "req-create-1"
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 5000
    assert all(API_KEY not in text for text in logged.lines)


async def test_reads_are_not_logged_and_routes_are_patterns_not_paths(
    keyed: Client, logged: Lines
) -> None:
    headers = {API_KEY_HEADER: API_KEY}
    await keyed.post("/api/users", json={"login": "octocat"}, headers=headers)
    read = await keyed.get("/api/users/octocat", headers=headers)
    assert read.status == 200
    gone = await keyed.delete("/api/users/octocat", headers=headers)
    assert gone.status in (202, 204), await gone.text()
    lines = logged.access()
    assert [(e["method"], e["route"]) for e in lines] == [
        ("POST", "/api/users"),
        ("DELETE", "/api/users/{login}"),
    ]
    # The user is a field of its own (from the route), never inside the route.
    assert lines[1]["login"] == "octocat"
    assert all("octocat" not in e["route"] for e in lines)


async def test_a_refused_key_is_logged_on_any_method_without_the_key(
    keyed: Client, logged: Lines
) -> None:
    wrong = "wrong-key-" + API_KEY
    response = await keyed.get("/api/users", headers={API_KEY_HEADER: wrong})
    assert response.status == 401
    missing = await keyed.post("/api/users", json={"login": "octocat"})
    assert missing.status == 401
    lines = logged.access()
    assert [(e["method"], e["status"], e["credential"]) for e in lines] == [
        ("GET", 401, "key"),
        ("POST", 401, "none"),
    ]
    assert lines[0]["correlation_id"] == response.headers["X-Request-Id"]
    assert all(wrong not in text and API_KEY not in text for text in logged.lines)


async def test_a_page_names_its_session_cookie_kind_never_its_value(
    keyed: Client, logged: Lines
) -> None:
    forged = "forged-session-value-1234"
    keyed.session.cookie_jar.update_cookies({SESSION_COOKIE: forged})
    response = await keyed.post("/users", data={"login": "octocat", "csrf": "x"})
    assert response.status == 403
    [line] = logged.access()
    assert (line["route"], line["status"], line["credential"]) == ("/users", 403, "session")
    assert all(forged not in text for text in logged.lines)


async def test_every_line_of_a_request_carries_its_correlation_id(
    start_gateway: StartGateway, peers: FakeServices, logged: Lines
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("a bug")

    peers.answers["query.tracked_users"] = broken
    gateway = await start_gateway()
    response = await gateway.get("/api/users", headers={"X-Request-Id": "req-broken-7"})
    assert response.status == 500
    [failure] = [e for e in logged.entries() if e["message"] == "unexpected failure"]
    assert failure["correlation_id"] == "req-broken-7"
    # Outside the request, nothing is left behind.
    logging.getLogger("after").warning("later")
    assert "correlation_id" not in logged.entries()[-1]
