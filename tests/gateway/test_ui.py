"""The HTML interface over plain HTTP: forms, CSRF, sessions, flash messages, escaping and
failures. (The same journey in a real browser is `test_browser.py`.)"""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import ClientResponse

from gistsync.contracts import PollNow, UntrackUser
from tests.conftest import PARTITIONS
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import XSS, FakeServices, World, failing, gist
from tests.waiting import eventually

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def world(peers: FakeServices) -> World:
    world = World()
    world.add_user(
        "OctoCat",
        gist("aa11", XSS, ("x.html", "HTML")),
        gist("bb22", "Evil link", ("a.md", None), url="javascript:alert(1)"),
    )
    world.add_user("alice")
    world.track("alice")
    return world.serve(peers)


async def token(client: Client, path: str = "/") -> str:
    """The CSRF token of a page's forms (its cookie is now in the client's jar)."""
    match = CSRF.search(await (await client.get(path)).text())
    assert match is not None
    return match.group(1)


async def post(client: Client, path: str, data: dict[str, str], **kwargs: object) -> ClientResponse:
    return await client.post(path, data=data, allow_redirects=False, **kwargs)  # type: ignore[arg-type]


async def flash(client: Client, path: str = "/") -> str:
    body = await (await client.get(path)).text()
    match = re.search(r'<p class="flash (ok|error)"[^>]*>(.*?)</p>', body)
    assert match is not None, body
    return f"{match.group(1)}: {match.group(2)}"


async def test_the_list_page_is_html_with_strict_headers(gateway: Client, world: World) -> None:
    response = await gateway.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "gistsync_csrf=" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    body = await response.text()
    assert '<a href="/users/alice">alice</a>' in body
    assert "<script" not in body
    css = await gateway.get("/assets/gistsync.css")
    assert css.content_type == "text/css"


async def test_adding_a_user_by_form(gateway: Client, world: World, peers: FakeServices) -> None:
    csrf = await token(gateway)
    response = await post(gateway, "/users", {"login": "octocat", "csrf": csrf})
    assert response.status == 303
    assert response.headers["Location"] == "/"
    assert await flash(gateway) == "ok: Now tracking OctoCat: their gists appear within moments."
    assert "octocat" in world.tracked
    # Shown once.
    assert 'class="flash' not in await (await gateway.get("/")).text()

    again = await post(gateway, "/users", {"login": "OCTOCAT", "csrf": csrf})
    assert again.status == 303
    assert await flash(gateway) == "ok: OctoCat is already tracked."
    await post(gateway, "/users", {"login": "nobody", "csrf": csrf})
    assert await flash(gateway) == "error: There is no GitHub user nobody; nothing was added."
    await post(gateway, "/users", {"login": "<b>x</b>", "csrf": csrf})
    message = await flash(gateway)
    assert message.startswith("error: &#x27;&lt;b&gt;x&lt;/b&gt;&#x27; is not a GitHub login")
    assert len(peers.of_type("command.track_user")) == 1


async def test_forms_without_a_token_or_from_elsewhere_change_nothing(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    missing = await post(gateway, "/users", {"login": "octocat"})
    assert missing.status == 403
    assert "has expired or did not come from this site" in await missing.text()
    csrf = await token(gateway)
    wrong = await post(gateway, "/users", {"login": "octocat", "csrf": csrf[:-2] + "xx"})
    assert wrong.status == 403
    elsewhere = await post(
        gateway,
        "/users",
        {"login": "octocat", "csrf": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert elsewhere.status == 403
    fetched = await post(
        gateway,
        "/users/alice/untrack",
        {"csrf": csrf},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert fetched.status == 403
    as_json = await gateway.post("/users", json={"login": "octocat", "csrf": csrf})
    assert as_json.status == 403
    await asyncio.sleep(0.1)
    assert not [m for m in peers.received if m.type.startswith("command.")]


async def test_the_user_page_escapes_everything(gateway: Client, world: World) -> None:
    world.track("OctoCat")
    page = await gateway.get("/users/OctoCat")
    body = await page.text()
    assert page.status == 200
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in body
    assert "<img" not in body and "<script" not in body
    assert "javascript:" not in body
    assert '<a href="https://gist.github.com/aa11" rel="noopener noreferrer">' in body
    canonical = await gateway.get("/users/octocat?state=all", allow_redirects=False)
    assert canonical.status == 303
    assert canonical.headers["Location"] == "/users/OctoCat?state=all"
    missing = await gateway.get("/users/stranger")
    assert missing.status == 404
    assert "stranger is not tracked" in await missing.text()
    bad = await gateway.get("/users/%3Cscript%3E")
    assert bad.status == 404
    assert "<script>" not in await bad.text()


async def test_marking_seen_and_untracking_by_form(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    world.track("OctoCat")
    csrf = await token(gateway, "/users/OctoCat")
    one = await post(gateway, "/users/OctoCat/seen", {"gist_id": "aa11", "csrf": csrf})
    assert one.headers["Location"] == "/users/OctoCat"
    assert await flash(gateway, "/users/OctoCat") == "ok: Marked 1 gist as seen."
    assert world.seen == {"aa11"}
    await post(gateway, "/users/OctoCat/seen", {"csrf": csrf})  # no ids: all unseen
    assert await flash(gateway, "/users/OctoCat") == "ok: Marked 1 gist as seen."
    assert world.seen == {"aa11", "bb22"}
    await post(gateway, "/users/OctoCat/seen", {"gist_id": "zz99", "csrf": csrf})
    assert (await flash(gateway, "/users/OctoCat")).startswith("error: Not gists of OctoCat")
    await post(gateway, "/users/OctoCat/seen", {"gist_id": "a b", "csrf": csrf})
    assert (
        await flash(gateway, "/users/OctoCat") == "error: That is not a gist id; nothing changed."
    )

    gone = await post(gateway, "/users/octocat/untrack", {"csrf": csrf})
    assert gone.headers["Location"] == "/"
    assert (await flash(gateway)).startswith("ok: Stopped tracking OctoCat.")
    [command] = peers.of_type("command.untrack_user")
    assert isinstance(command, UntrackUser)
    await post(gateway, "/users/octocat/untrack", {"csrf": csrf})
    assert await flash(gateway) == "error: octocat is not tracked."


async def test_check_now_polls_and_comes_back(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    csrf = await token(gateway)
    back = await post(gateway, "/sync", {"csrf": csrf, "back": "/users/alice"})
    assert back.headers["Location"] == "/users/alice"
    away = await post(gateway, "/sync", {"csrf": csrf, "back": "https://evil.example/"})
    assert away.headers["Location"] == "/"
    # Two checks, each a poll of every partition.
    await eventually(lambda: len(peers.of_type("command.poll_now")) == 2 * PARTITIONS)
    assert all(isinstance(m, PollNow) for m in peers.of_type("command.poll_now"))


async def test_failures_are_pages_and_flash_messages(gateway: Client, peers: FakeServices) -> None:
    page = await gateway.get("/")
    assert page.status == 504
    assert "did not answer in time" in await page.text()
    csrf = CSRF.search(await (await gateway.get("/login")).text())
    assert csrf is None  # no key: the sign-in page sends you on
    match = CSRF.search(await (await gateway.get("/nowhere")).text())
    assert match is None
    assert (await gateway.get("/nowhere")).status == 404

    peers.answers["query.tracked_users"] = failing("failed", "cache not loaded")
    failed = await gateway.get("/")
    assert failed.status == 502
    assert "cache not loaded" in await failed.text()


async def test_a_failed_form_says_why(
    start_gateway: StartGateway, peers: FakeServices, world: World
) -> None:
    gateway = await start_gateway()
    csrf = await token(gateway)
    del peers.answers["query.user_status"]
    response = await post(gateway, "/users", {"login": "octocat", "csrf": csrf})
    assert response.status == 303
    peers.answers["query.user_status"] = world.answer
    assert await flash(gateway) == (
        "error: A gistsync service did not answer in time; try again shortly."
    )


async def test_with_a_key_the_pages_need_a_session(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY)
    first = await gateway.get("/users/alice?state=all", allow_redirects=False)
    assert first.status == 303
    assert first.headers["Location"] == "/login?next=/users/alice%3Fstate%3Dall"
    login = await gateway.get(first.headers["Location"])
    assert login.status == 200
    body = await login.text()
    assert 'name=next value="/users/alice?state=all"' in body
    assert "Sign in with the gateway&#x27;s API key first." in body
    csrf = CSRF.search(body)
    assert csrf is not None

    refused = await post(gateway, "/users", {"login": "octocat", "csrf": csrf.group(1)})
    assert refused.status == 303
    assert refused.headers["Location"] == "/login?next=/"
    wrong = await post(gateway, "/login", {"api_key": "nope", "csrf": csrf.group(1)})
    assert wrong.headers["Location"] == "/login?next=/"
    signed = await post(
        gateway,
        "/login",
        {"api_key": API_KEY, "csrf": csrf.group(1), "next": "/users/alice?state=all"},
    )
    assert signed.status == 303
    assert signed.headers["Location"] == "/users/alice?state=all"
    cookies = signed.headers.getall("Set-Cookie")
    assert any(c.startswith("gistsync_session=") and "HttpOnly" in c for c in cookies)
    assert (await gateway.get("/users/alice")).status == 200
    # The token changed at sign-in: the one from before no longer works.
    stale = await post(gateway, "/users", {"login": "octocat", "csrf": csrf.group(1)})
    assert stale.status == 403
    fresh = await token(gateway)
    added = await post(gateway, "/users", {"login": "octocat", "csrf": fresh})
    assert added.status == 303
    assert "octocat" in world.tracked
    # The API key in a header is for programs; pages want the session.
    out = await post(gateway, "/logout", {"csrf": fresh})
    assert out.headers["Location"] == "/login"
    after = await gateway.get("/", headers={"X-API-Key": API_KEY}, allow_redirects=False)
    assert after.status == 303


async def test_pages_can_be_read_without_a_session_when_reads_are_open(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY, gateway_protect_reads=False)
    page = await gateway.get("/users/alice?state=all")
    assert page.status == 200
    assert '<a href="/login?next=/users/alice%3Fstate%3Dall">Sign in</a>' in await page.text()
    csrf = await token(gateway)
    refused = await post(gateway, "/users", {"login": "octocat", "csrf": csrf})
    assert refused.headers["Location"].startswith("/login")


async def test_forms_are_rate_limited_and_bounded(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_rate_limit_burst=2, gateway_max_body_bytes=1024)
    csrf = await token(gateway)
    huge = await post(gateway, "/sync", {"csrf": csrf, "back": "/" + "x" * 2000})
    assert huge.status == 413
    assert "larger than this gateway accepts" in await huge.text()
    assert (await post(gateway, "/sync", {"csrf": csrf})).status == 303
    limited = await post(gateway, "/sync", {"csrf": csrf})
    assert limited.status == 429
    assert limited.content_type == "text/html"
    assert int(limited.headers["Retry-After"]) >= 1
