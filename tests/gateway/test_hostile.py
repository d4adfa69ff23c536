"""What a security review reproduced with curl, each now a test: bytes that are not what a
handler expects never give a 5xx (or a traceback), a page of another site changes nothing,
with a key or without, a Host that is not ours is refused, HEAD changes nothing, and wrong
keys are throttled on every route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.limits import RateLimiter
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import FakeServices, World, gist
from tests.gateway.raw import Answer, Header, build, exchange, failures
from tests.gateway.test_ui import CSRF
from tests.waiting import eventually

FORM = "application/x-www-form-urlencoded"
KEYED = pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key"])
UI_PAGES = ["/", "/users/alice", "/users/alice?state=all", "/login", "/login?next=/users/x"]


@pytest.fixture
def world(peers: FakeServices) -> World:
    world = World()
    world.add_user("OctoCat", gist("aa11", "Hello", ("hello.py", "Python")))
    world.add_user("alice", gist("bb22", "Hi", ("hi.md", None)))
    world.track("alice")
    return world.serve(peers)


async def start(start_gateway: StartGateway, keyed: bool, **overrides: Any) -> Client:
    if keyed:
        overrides.setdefault("gateway_api_key", API_KEY)
    return await start_gateway(**overrides)


async def send(gateway: Client, request: bytes) -> Answer:
    assert gateway.server.port is not None
    return await asyncio.to_thread(exchange, gateway.server.port, request)


def commands(peers: FakeServices) -> list[str]:
    return [m.type for m in peers.received if m.type.startswith("command.")]


# --- no 5xx, whatever the bytes ------------------------------------------------------------


@KEYED
@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/login", [("Content-Type", FORM)], b"csrf=x&api_key=\xff"),
        ("/login", [("Content-Type", FORM + "; charset=bogus-9")], b"csrf=x&api_key=y"),
        ("/users", [("Content-Type", FORM + "; charset=utf-16")], b"csrf=x&login=\xd8\x00"),
        ("/logout", [("Content-Type", "multipart/form-data; boundary=zz")], b"--zz\r\nabcd"),
        ("/logout", [("Content-Type", "multipart/form-data")], b"--zz\r\n\r\n"),
        (
            "/sync",
            [("Content-Type", "multipart/form-data; boundary=zz")],
            b'--zz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n\xff\r\n--zz--\r\n',
        ),
        ("/users/alice/seen", [("Content-Type", FORM)], b"gist_id=%ff%fe&csrf=%C0%80"),
    ],
)
async def test_unreadable_forms_are_400_pages(
    start_gateway: StartGateway,
    world: World,
    peers: FakeServices,
    caplog: pytest.LogCaptureFixture,
    keyed: bool,
    path: str,
    headers: list[Header],
    body: bytes,
) -> None:
    gateway = await start(start_gateway, keyed)
    answer = await send(gateway, build("POST", path, headers, body))
    assert answer.status in (400, 403), answer.text
    assert answer.header("Content-Type") == "text/html; charset=utf-8"
    assert failures(caplog) == []
    assert commands(peers) == []


@KEYED
async def test_an_unbalanced_origin_is_another_site_not_an_error(
    start_gateway: StartGateway, world: World, caplog: pytest.LogCaptureFixture, keyed: bool
) -> None:
    gateway = await start(start_gateway, keyed)
    key: list[Header] = [("X-API-Key", API_KEY)] if keyed else []
    post = await send(gateway, build("POST", "/api/sync", [("Origin", "http://["), *key]))
    assert post.status == 403
    assert post.header("Content-Type") == "application/problem+json; charset=utf-8"
    read = await send(gateway, build("GET", "/api/users", [("Origin", "http://["), *key]))
    assert read.status == 200  # a read changes nothing, whoever asks
    assert failures(caplog) == []


@KEYED
@pytest.mark.parametrize("path", ["/api/users", "/list", "/api/users/alice", "/new?user=bob"])
async def test_an_api_key_of_any_bytes_is_refused_not_an_error(
    start_gateway: StartGateway,
    world: World,
    caplog: pytest.LogCaptureFixture,
    keyed: bool,
    path: str,
) -> None:
    gateway = await start(start_gateway, keyed)
    for value in (b"\xff\xfe", b"caf\xc3\xa9", API_KEY.encode() + b"\xff", b"\x80" * 300):
        answer = await send(gateway, build("GET", path, [("X-API-Key", value)]))
        if keyed:
            assert answer.status == 401, (value, answer.text)
        else:
            assert answer.status < 500, (value, answer.text)
    assert failures(caplog) == []


@KEYED
@pytest.mark.parametrize("cookie", ["gistsync_session", "gistsync_csrf", "gistsync_flash"])
async def test_cookies_of_any_bytes_are_ignored_on_every_page(
    start_gateway: StartGateway,
    world: World,
    caplog: pytest.LogCaptureFixture,
    keyed: bool,
    cookie: str,
) -> None:
    gateway = await start(start_gateway, keyed)
    for path in UI_PAGES:
        for value in (b"\xff", b"\xe9t\xe9.abc", b"a.\xc3\xa9", b"\xf0\x9f\x92\xa9." * 50):
            header: Header = ("Cookie", cookie.encode() + b"=" + value)
            answer = await send(gateway, build("GET", path, [header]))
            assert answer.status in (200, 303), (path, value, answer.status, answer.text)
        form = build("POST", "/users", [header, ("Content-Type", FORM)], b"login=x&csrf=y")
        assert (await send(gateway, form)).status in (303, 403)
    assert failures(caplog) == []


async def test_a_body_that_cannot_be_decoded_is_400(
    gateway: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    json = [("Content-Type", "application/json")]
    broken = [
        build("POST", "/api/users", json, b'{"login": "\xff"}'),
        build("POST", "/api/users", [*json, ("Content-Encoding", "gzip")], b"not gzip at all"),
        build(
            "POST",
            "/api/users",
            [*json, ("Transfer-Encoding", "chunked")],
            b"zz\r\nnot a chunk\r\n0\r\n\r\n",
        ),
    ]
    for request in broken:
        answer = await send(gateway, request)
        assert answer.status == 400, answer.text
    assert failures(caplog) == []


# --- a page of another site changes nothing ------------------------------------------------


CROSS_SITE: list[list[Header]] = [
    [("Sec-Fetch-Site", "cross-site")],
    [("Sec-Fetch-Site", "same-site"), ("Origin", "http://127.0.0.1:1")],  # another local port
    [("Origin", "http://attacker.example")],
    [("Origin", "null")],
]


@KEYED
@pytest.mark.parametrize("browser", CROSS_SITE, ids=["fetch-site", "same-site", "origin", "null"])
async def test_a_change_another_site_asks_for_is_refused(
    start_gateway: StartGateway,
    world: World,
    peers: FakeServices,
    keyed: bool,
    browser: list[Header],
) -> None:
    world.track("OctoCat")
    gateway = await start(start_gateway, keyed)
    key: list[Header] = [("X-API-Key", API_KEY)] if keyed else []
    json = [("Content-Type", "application/json")]
    attempts = [
        build("GET", "/new?user=bob", [*browser, *key]),  # <img src=…/new?user=bob>
        build("GET", "/show?user=OctoCat", [*browser, *key]),  # <img src=…/show?user=…>
        build("GET", "/fetch", [*browser, *key]),
        build("POST", "/api/sync", [*browser, *key]),  # an auto-submitted form
        build("POST", "/api/users", [*browser, *key, *json], b'{"login": "bob"}'),
        build("DELETE", "/api/users/alice", [*browser, *key]),
        build("POST", "/users", [*browser, ("Content-Type", FORM)], b"login=bob&csrf=x"),
    ]
    for request in attempts:
        answer = await send(gateway, request)
        assert answer.status == 403, (request, answer.text)
        assert b"another site" in answer.body
    # The same from a program (no browser metadata) goes through.
    assert (await send(gateway, build("GET", "/show?user=OctoCat", key))).status == 200
    await peers_hear(peers, "command.mark_seen")
    assert commands(peers) == ["command.mark_seen"]


async def peers_hear(peers: FakeServices, kind: str) -> None:
    await eventually(lambda: peers.of_type(kind), what=f"a {kind} reaching the peers")


@KEYED
async def test_the_origin_is_compared_by_scheme_host_and_port(
    start_gateway: StartGateway, world: World, peers: FakeServices, keyed: bool
) -> None:
    gateway = await start(start_gateway, keyed)
    port = gateway.server.port
    assert port is not None
    key: list[Header] = [("X-API-Key", API_KEY)] if keyed else []
    host = f"127.0.0.1:{port}"
    refused = [f"https://{host}", f"http://127.0.0.1:{port + 1}", "http://127.0.0.1"]
    for origin in refused:
        request = build("POST", "/api/sync", [("Origin", origin), *key], host=host)
        assert (await send(gateway, request)).status == 403, origin
    ours = [("Origin", f"http://{host}"), ("Sec-Fetch-Site", "same-origin"), *key]
    assert (await send(gateway, build("POST", "/api/sync", ours, host=host))).status == 202


async def test_a_host_that_is_not_ours_is_421(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    gateway = await start_gateway(gateway_allowed_hosts="gists.example.com, .corp.example")
    for host in ("attacker.example", "attacker.example:8080", "localhost.attacker.example", "["):
        for path in ("/api/users", "/", "/list", "/new?user=bob", "/healthz", "/nowhere"):
            answer = await send(gateway, build("GET", path, host=host))
            assert answer.status == 421, (host, path, answer.status)
    problem = await send(gateway, build("GET", "/api/users", host="attacker.example"))
    assert problem.header("Content-Type") == "application/problem+json; charset=utf-8"
    page = await send(gateway, build("GET", "/", host="attacker.example"))
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    ours = [
        "127.0.0.1",
        "localhost:8080",
        "LOCALHOST.",
        "[::1]:8080",
        "gateway:8080",
        "gists.example.com",
        "a.corp.example",
    ]
    for host in ours:
        answer = await send(gateway, build("GET", "/api/users", host=host))
        assert answer.status == 200, host
    two = [("Host", "127.0.0.1"), ("Host", "attacker.example")]
    assert (await send(gateway, build("GET", "/api/users", two, host=None))).status in (400, 421)
    assert commands(peers) == []


async def test_a_forwarded_host_must_be_ours_too_behind_a_trusted_proxy(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(
        gateway_trust_forwarded_for=True, gateway_allowed_hosts="gists.example.com"
    )
    fine = build("GET", "/api/users", [("X-Forwarded-Host", "gists.example.com")])
    assert (await send(gateway, fine)).status == 200
    rebound = build("GET", "/api/users", [("X-Forwarded-Host", "attacker.example")])
    assert (await send(gateway, rebound)).status == 421


async def test_any_host_when_the_operator_says_so(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_allowed_hosts="*")
    answer = await send(gateway, build("GET", "/api/users", host="anything.example"))
    assert answer.status == 200


# --- HEAD changes nothing ------------------------------------------------------------------


@KEYED
async def test_head_changes_nothing(
    start_gateway: StartGateway, world: World, peers: FakeServices, keyed: bool
) -> None:
    world.track("OctoCat")
    gateway = await start(start_gateway, keyed)
    key: list[Header] = [("X-API-Key", API_KEY)] if keyed else []
    show = await send(gateway, build("HEAD", "/show?user=OctoCat", key))
    assert show.status == 200
    assert show.header("Content-Type") == "text/html; charset=utf-8"
    assert show.body == b""
    for path in ("/new?user=bob", "/fetch"):
        answer = await send(gateway, build("HEAD", path, key))
        assert answer.status == 405
        assert answer.header("Allow") == "GET"
    # A GET afterwards still finds the gist unseen: the HEAD marked nothing.
    assert b"Hello" in (await send(gateway, build("GET", "/show?user=OctoCat", key))).body
    await peers_hear(peers, "command.mark_seen")
    assert commands(peers) == ["command.mark_seen"]


# --- wrong keys are throttled on every route -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_wrong_keys_are_throttled_on_reads_too(
    start_gateway: StartGateway, world: World
) -> None:
    clock = Clock()
    gateway = await start_gateway(
        gateway_api_key=API_KEY, auth_failures=RateLimiter(6, 3, clock=clock)
    )
    wrong = {"X-API-Key": "x" * 20}
    statuses = [(await gateway.get("/api/users", headers=wrong)).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    for path in ("/api/users", "/list", "/api/users/alice/gists"):
        refused = await gateway.get(path, headers=wrong)
        assert refused.status == 429, path
        assert refused.headers["Retry-After"] == "10"
    # While the budget is spent even the right key is refused: no guess can be told apart.
    right = await gateway.get("/api/users", headers={"X-API-Key": API_KEY})
    assert right.status == 429
    # No key at all is no guess, and costs nothing.
    assert (await gateway.get("/api/users")).status == 401
    clock.now += 10
    assert (await gateway.get("/api/users", headers={"X-API-Key": API_KEY})).status == 200


async def test_wrong_keys_at_sign_in_are_throttled(
    start_gateway: StartGateway, world: World
) -> None:
    clock = Clock()
    gateway = await start_gateway(
        gateway_api_key=API_KEY, auth_failures=RateLimiter(6, 2, clock=clock)
    )
    body = await (await gateway.get("/login")).text()
    match = CSRF.search(body)
    assert match is not None
    form = {"api_key": "not-the-key-0123456789", "csrf": match.group(1)}
    for _ in range(2):
        assert (await gateway.post("/login", data=form, allow_redirects=False)).status == 303
    refused = await gateway.post("/login", data=form, allow_redirects=False)
    assert refused.status == 429
    assert "Too many wrong API keys" in await refused.text()
    clock.now += 10
    form["api_key"] = API_KEY
    signed = await gateway.post("/login", data=form, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/"
