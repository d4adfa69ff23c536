"""Page sessions: random ids, sign-out that revokes (here, and in every running gateway), and
CSRF tokens that are good only with the session they were made for."""

from __future__ import annotations

import json

import aio_pika
import pytest
from yarl import URL

from gateway.security import CSRF_COOKIE, KEYS, SESSION_COOKIE
from tests.gateway.conftest import API_KEY, Client, Peers, StartGateway
from tests.gateway.fakes import FakeServices, World
from tests.gateway.test_ui import CSRF, post, token
from tests.waiting import eventually


def small_world() -> World:
    world = World()
    world.add_user("alice")
    world.add_user("OctoCat")
    world.track("alice")
    return world


@pytest.fixture
def world(peers: FakeServices) -> World:
    return small_world().serve(peers)


@pytest.fixture
def broker_world(broker_peers: Peers) -> World:
    """For the sign-outs that travel between gateways on the real broker."""
    return small_world().serve(broker_peers)


async def sign_in(gateway: Client) -> str:
    """Signs the client in; its session cookie."""
    csrf = await token(gateway, "/login")
    signed = await post(gateway, "/login", {"api_key": API_KEY, "csrf": csrf})
    assert signed.status == 303 and signed.headers["Location"] == "/"
    return cookie_of(gateway, SESSION_COOKIE)


def cookie_of(gateway: Client, name: str) -> str:
    jar = gateway.session.cookie_jar.filter_cookies(URL(str(gateway.make_url("/"))))
    return jar[name].value


async def page_status(gateway: Client, session: str) -> int:
    """What the list page answers to a bare request carrying only this session cookie."""
    response = await gateway.get(
        "/", headers={"Cookie": f"{SESSION_COOKIE}={session}"}, allow_redirects=False
    )
    return response.status


async def test_two_sign_ins_in_one_second_get_different_sessions(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY)
    first = await sign_in(gateway)
    gateway.session.cookie_jar.clear()
    second = await sign_in(gateway)
    assert first != second
    assert await page_status(gateway, first) == 200
    assert await page_status(gateway, second) == 200


async def test_signing_out_revokes_the_session_not_only_the_cookie(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY)
    session = await sign_in(gateway)
    other = await sign_in(await start_gateway(gateway_api_key=API_KEY))  # another browser
    fresh = await token(gateway)
    out = await post(gateway, "/logout", {"csrf": fresh})
    assert out.status == 303 and out.headers["Location"] == "/login"
    assert await page_status(gateway, session) == 303  # a copy of the cookie is refused
    assert await page_status(gateway, other) == 200  # other sessions go on


async def test_a_sign_out_reaches_every_running_gateway(
    start_broker_gateway: StartGateway, broker_world: World
) -> None:
    start_gateway = start_broker_gateway
    one = await start_gateway(gateway_api_key=API_KEY)
    two = await start_gateway(gateway_api_key=API_KEY)  # a replica: same key, same secret
    session = await sign_in(one)
    assert await page_status(two, session) == 200
    await post(one, "/logout", {"csrf": await token(one)})

    async def refused_by_the_other() -> bool:
        return await page_status(two, session) == 303

    await eventually(refused_by_the_other, what="the replica refusing the revoked session")
    # What the README says: a gateway started after the sign-out never heard of it, and
    # takes the cookie until it expires (GATEWAY_SESSION_MAX_AGE_SECONDS).
    later = await start_gateway(gateway_api_key=API_KEY)
    assert await page_status(later, session) == 200


async def test_malformed_sign_outs_on_the_bus_are_ignored(
    start_broker_gateway: StartGateway,
    broker_world: World,
    amqp_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = await start_broker_gateway(gateway_api_key=API_KEY)
    cookie = await sign_in(gateway)
    session = gateway.app[KEYS].session(cookie)
    assert session is not None
    garbage = [b"not json", b"[]", json.dumps({"session": "x", "expires": 1}).encode()]
    valid = json.dumps({"session": session.digest, "expires": session.expires}).encode()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{prefix}.gateway.sessions")
        for body in [*garbage, valid]:
            await exchange.publish(aio_pika.Message(body), routing_key="")

    async def revoked() -> bool:
        return await page_status(gateway, cookie) == 303

    await eventually(revoked, what="the valid sign-out after the garbage")
    ignored = [r for r in caplog.records if r.getMessage() == "ignored a malformed sign-out"]
    assert len(ignored) == len(garbage)


async def test_a_form_token_is_good_only_in_its_own_session(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    victim = await start_gateway(gateway_api_key=API_KEY)
    await sign_in(victim)
    # Someone who can plant cookies (a sibling subdomain, say) gets a pair of their own...
    attacker = await start_gateway(gateway_api_key=API_KEY)
    login_page = await (await attacker.get("/login")).text()
    planted = CSRF.search(login_page)
    assert planted is not None
    planted_cookie = cookie_of(attacker, CSRF_COOKIE)
    # ...and sets it in the victim's browser, whose session cookie stays.
    victim.session.cookie_jar.update_cookies(
        {CSRF_COOKIE: planted_cookie}, URL(str(victim.make_url("/")))
    )
    ridden = await post(victim, "/users", {"login": "octocat", "csrf": planted.group(1)})
    assert ridden.status == 403
    assert "octocat" not in world.tracked
    # The victim's own page gives a token bound to their session, which works.
    added = await post(victim, "/users", {"login": "octocat", "csrf": await token(victim)})
    assert added.status == 303
    assert "octocat" in world.tracked
