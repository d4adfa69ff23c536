"""A hostile page in a real browser changes nothing, with a key or without.

Headless Chromium opens a page served from another local origin: another port of 127.0.0.1
(the same site, which gets the gateway's cookies, since cookies ignore the port) and
`localhost` (another site). The page tries what the review did by hand: `<img>` on the
predecessor's GETs that change state, auto-submitted forms (the API's and the pages', with
the victim's own CSRF cookie copied in as the token by the attacker's server, which sees it)
and `fetch` in no-cors mode. With a key, the operator is signed in in that same browser.
Every attempt is refused 403, nothing reaches the other services, and the page cannot read
an answer. A name rebound to the gateway's address (DNS rebinding) gets 421.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from gateway.security import CSRF_COOKIE, KEYS
from tests.conftest import free_port
from tests.gateway.browser import chromium
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import FakeServices, World, gist
from tests.waiting import eventually

pytestmark = pytest.mark.browser

# What the page attempts, by route and method: each a state change, each to be refused.
CHANGES = {
    ("/new", "GET"),
    ("/show", "GET"),
    ("/fetch", "GET"),
    ("/api/sync", "POST"),
    ("/api/users", "POST"),
    ("/users", "POST"),
    ("/users/{login}/seen", "POST"),
}
READ = ("/api/users", "GET")
Served = Counter[tuple[str, str, str]]


def served() -> Served:
    """What the gateway answered so far, by route, method and status: its own metric (the
    browser hides most of the answers from the page, and some from Playwright too)."""
    counts: Served = Counter()
    for metric in REGISTRY.collect():
        if metric.name == "gistsync_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    counts[(labels["route"], labels["method"], labels["status"])] += int(
                        sample.value
                    )
    return counts


def attack_page(target: str, csrf: str) -> str:
    """The hostile page; `csrf` is the victim's CSRF cookie, as the attacker's server saw it."""
    token = escape(csrf, quote=True)
    return f"""<!doctype html><html><body>
<img src="{target}/new?user=bob"><img src="{target}/show?user=OctoCat"><img src="{target}/fetch">
<iframe name=a></iframe><iframe name=b></iframe><iframe name=c></iframe>
<form id=api method=post action="{target}/api/sync" target=a></form>
<form id=track method=post action="{target}/users" target=b>
  <input name=login value=bob><input name=csrf value="{token}"></form>
<form id=seen method=post action="{target}/users/OctoCat/seen" target=c>
  <input name=csrf value="{token}"></form>
<script>
for (const id of ["api", "track", "seen"]) document.getElementById(id).submit();
window.read = "pending";
Promise.allSettled([
  fetch("{target}/api/users", {{method: "POST", mode: "no-cors", credentials: "include",
        headers: {{"Content-Type": "text/plain"}}, body: '{{"login": "bob"}}'}}),
  fetch("{target}/api/users", {{credentials: "include"}}).then(r => r.text()).then(
        () => {{ window.read = "read"; }}, () => {{ window.read = "blocked"; }}),
]).then(() => {{ document.title = "done"; }});
</script></body></html>"""


@dataclass
class Attacker:
    """A web server on another port of this machine, serving the hostile page."""

    target: str
    port: int = field(default_factory=free_port)

    async def page(self, request: web.Request) -> web.Response:
        csrf = request.cookies.get(CSRF_COOKIE, "")  # same host, other port: it gets them
        return web.Response(text=attack_page(self.target, csrf), content_type="text/html")


@pytest.fixture
async def attacker(gateway_url: str) -> AsyncIterator[Attacker]:
    server = Attacker(gateway_url)
    app = web.Application()
    app.router.add_get("/attack", server.page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


@pytest.fixture
def world(peers: FakeServices) -> World:
    world = World()
    world.add_user("OctoCat", gist("aa11", "One", ("a.py", "Python")), gist("bb22", "Two"))
    world.add_user("bob")
    world.track("OctoCat")
    return world.serve(peers)


@pytest.fixture(params=[False, True], ids=["no-key", "key"])
async def gateway(request: pytest.FixtureRequest, start_gateway: StartGateway) -> Client:
    return await start_gateway(gateway_api_key=API_KEY if request.param else None)


@pytest.fixture
def gateway_url(gateway: Client) -> str:
    return str(gateway.make_url("")).rstrip("/")


async def test_a_hostile_page_changes_nothing(
    gateway: Client, gateway_url: str, attacker: Attacker, world: World, peers: FakeServices
) -> None:
    port = gateway.server.port
    rebound = "rebound.test"
    rules = f"--host-resolver-rules=MAP {rebound} 127.0.0.1"
    async with chromium([rules]) as browser:
        context = await browser.new_context()
        page = await context.new_page()
        # The operator's own tab: signed in when there is a key, so the cookies are there.
        await page.goto(gateway_url + "/")
        if gateway.app[KEYS].enforced:
            assert page.url.startswith(gateway_url + "/login")
            await page.fill("#api_key", API_KEY)
            await page.click("button:has-text('Sign in')")
            assert page.url == gateway_url + "/"
        assert await page.locator("tr", has_text="OctoCat").locator(".count").inner_text() == "2"

        for origin in (f"http://127.0.0.1:{attacker.port}", f"http://localhost:{attacker.port}"):
            before = served()
            hostile = await context.new_page()
            await hostile.goto(f"{origin}/attack")
            await hostile.wait_for_function("document.title === 'done'")

            def answered(before: Served = before) -> Served:
                return served() - before

            def attempts() -> set[tuple[str, str]]:
                return {(route, method) for route, method, _ in answered()}

            await eventually(lambda: CHANGES | {READ} <= attempts(), what="every attempt")
            changes = {k: n for k, n in answered().items() if (k[0], k[1]) in CHANGES}
            assert changes == {(route, method, "403"): 1 for route, method in CHANGES}, origin
            assert await hostile.evaluate("window.read") == "blocked"
            await hostile.close()

        # A name rebound to the gateway's address is not one of its names.
        response = await page.goto(f"http://{rebound}:{port}/api/users")
        assert response is not None and response.status == 421

        # Nothing changed: the operator's page still shows both gists unseen, bob untracked.
        await page.goto(gateway_url + "/")
        assert await page.locator("tr", has_text="OctoCat").locator(".count").inner_text() == "2"
        assert await page.locator("tr", has_text="bob").count() == 0
        await context.close()
    assert [m.type for m in peers.received if m.type.startswith("command.")] == []
    assert world.seen == set() and set(world.tracked) == {"octocat"}
