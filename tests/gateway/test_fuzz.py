"""No byte sequence gives a 5xx: Hypothesis writes raw HTTP/1.1 requests at every route of a
live gateway (a real port, a real broker), with and without an API key. Request lines,
headers, cookies and bodies are generated from bytes, around what the gateway reads: its
cookies (valid ones too, so the fuzz gets past the CSRF check into the handlers), its
headers, forms of every charset and shape, multipart, JSON, compressed and chunked bodies.

Every answer must be below 500, the gateway's own metrics must count no 5xx, and nothing may
be logged at ERROR or with a traceback. Deterministic: derandomized, no example database.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from gateway.security import CSRF_COOKIE, FLASH_COOKIE, KEYS, SESSION_COOKIE, Flash
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import XSS, FakeServices, World, gist
from tests.gateway.raw import Header, build, exchange, failures

PER_ROUTE = 30  # examples for each route, in each mode
LOGINS = ["alice", "OctoCat", "nobody", "-bad-", "a" * 40, "%ff", "..", "%2e%2e", "\u00e9"]
FIELDS = ["csrf", "login", "api_key", "next", "back", "gist_id", "all", "gist_ids", "x"]
CHARSETS = ["utf-8", "latin-1", "bogus-9", "utf-16", "utf-32", "ascii", "idna", "", '"x']
ENCODINGS = ["gzip", "deflate", "br", "identity", "gzip, gzip", "bogus"]


@dataclass
class Credentials:
    """Valid values the fuzz may pick, so it reaches past each check."""

    key: str
    session: str
    csrf_cookie: str
    form_token: str
    flash: str


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    fives: list[str] = field(default_factory=list)
    examples: int = 0


def routes(gateway: Client) -> dict[str, list[str]]:
    """Every route's template, with its methods, as the application has them."""
    found: dict[str, list[str]] = {}
    for route in gateway.app.router.routes():
        if route.resource is not None:
            found.setdefault(route.resource.canonical, []).append(route.method)
    return dict(sorted(found.items()))


def junk(max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


T = Any


def mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`common` nine times in ten: most requests should be HTTP that reaches the application,
    the rest tries the parser."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 0 else common)


TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# What a header value may hold on the wire: visible ASCII, space, tab and obs-text.
VALUE_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])


def header_safe(max_size: int = 60) -> st.SearchStrategy[bytes]:
    clean = st.lists(st.sampled_from(VALUE_BYTES), max_size=max_size).map(bytes)
    return mostly(clean, junk(max_size))


def targets(templates: list[str]) -> st.SearchStrategy[bytes]:
    def fill(template: str, login: str) -> bytes:
        return template.replace("{login}", quote_from_bytes(login.encode(), safe="%")).encode()

    base = st.builds(fill, st.sampled_from(templates), st.sampled_from(LOGINS))
    queries = mostly(
        st.one_of(
            st.just(b""),
            st.sampled_from([b"?user=alice", b"?user=OctoCat", b"?state=all", b"?next=//evil"]),
            st.builds(
                lambda name, value: b"?" + name + b"=" + value,
                st.sampled_from([b"user", b"state", b"next", b"x"]),
                junk(30).map(lambda b: quote_from_bytes(b).encode()),
            ),
        ),
        junk(30).map(lambda b: b"?" + b),  # raw: often not valid HTTP
    )
    tails = st.one_of(
        st.just(b""), st.just(b""), junk(12).map(lambda b: quote_from_bytes(b).encode())
    )
    return st.builds(lambda b, t, q: b + t + q, base, tails, queries)


def cookies(creds: Credentials) -> st.SearchStrategy[bytes]:
    ours = st.sampled_from([SESSION_COOKIE, CSRF_COOKIE, FLASH_COOKIE]).map(str.encode)
    names = mostly(ours, header_safe(10))
    values = st.one_of(
        st.sampled_from([creds.session, creds.csrf_cookie, creds.flash]).map(str.encode),
        header_safe(80),
        st.builds(lambda v, t: v.encode()[:-3] + t, st.just(creds.session), junk(6)),
    )
    pair = st.builds(lambda n, v: n + b"=" + v, names, values)
    return st.lists(pair, max_size=4).map(b"; ".join)


def content_types() -> st.SearchStrategy[bytes]:
    form = b"application/x-www-form-urlencoded"
    return st.one_of(
        st.just(form),
        st.builds(lambda c: form + b"; charset=" + c.encode(), st.sampled_from(CHARSETS)),
        st.just(b"multipart/form-data; boundary=zz"),
        st.builds(lambda b: b"multipart/form-data; boundary=" + b, header_safe(20)),
        st.just(b"multipart/form-data"),
        st.just(b"application/json"),
        st.builds(lambda c: b"application/json; charset=" + c.encode(), st.sampled_from(CHARSETS)),
        header_safe(40),
    )


def form_bodies(creds: Credentials) -> st.SearchStrategy[bytes]:
    values = st.one_of(
        st.sampled_from(
            [creds.form_token, creds.key, "alice", "octocat", "/users/alice", "aa11"]
        ).map(str.encode),
        junk(30).map(lambda b: quote_from_bytes(b).encode()),
        junk(30),
    )
    pair = st.builds(lambda n, v: n.encode() + b"=" + v, st.sampled_from(FIELDS), values)
    return st.lists(pair, max_size=6).map(b"&".join)


def multipart_bodies(creds: Credentials) -> st.SearchStrategy[bytes]:
    def part(name: str, value: bytes, filename: bool, extra: bytes) -> bytes:
        disposition = f'form-data; name="{name}"'.encode()
        if filename:
            disposition += b'; filename="f.txt"'
        return b"--zz\r\nContent-Disposition: " + disposition + b"\r\n" + extra + b"\r\n" + value

    values = st.one_of(st.sampled_from([creds.form_token.encode(), b"alice"]), junk(40))
    extras = st.sampled_from(
        [
            b"",
            b"Content-Type: text/plain; charset=bogus\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Content-Encoding: gzip\r\n",
        ]
    )
    parts = st.lists(
        st.builds(part, st.sampled_from(FIELDS), values, st.booleans(), extras), max_size=4
    )
    endings = st.sampled_from([b"\r\n--zz--\r\n", b"", b"\r\n--zz", b"\r\n--zz--"])
    return st.builds(lambda ps, end: b"\r\n".join(ps) + end, parts, endings)


def json_bodies() -> st.SearchStrategy[bytes]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(["alice", "octocat", "aa11"]),
    )
    values = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )
    return st.one_of(values.map(lambda v: json.dumps(v).encode()), junk(60))


def chunked(body: bytes) -> bytes:
    return (
        b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7])
            for i in range(0, len(body), 7)
        )
        + b"0\r\n\r\n"
    )


@st.composite
def requests(
    draw: Callable[..., Any], templates: list[str], creds: Credentials, methods: list[str]
) -> bytes:
    """Half the requests are everything a browser or program of ours would send (right
    method, key, cookies, token) with fuzzed values inside, to reach deep into the handlers;
    the other half fuzz the envelope itself."""
    if draw(st.booleans()):
        whole: bytes = draw(envelope_ok(templates, creds, methods))
        return whole
    method = draw(
        mostly(
            st.sampled_from(
                [b"GET", b"GET", b"POST", b"POST", b"HEAD", b"DELETE", b"PUT", b"OPTIONS", b"PATCH"]
            ),
            st.binary(min_size=1, max_size=8),
        )
    )
    target = draw(targets(templates))
    headers: list[Header] = []
    if draw(st.integers(0, 9)) == 0:
        headers.append(
            (
                "Host",
                draw(
                    st.one_of(
                        header_safe(30),
                        st.sampled_from(
                            [b"localhost:8080", b"attacker.example", b"[", b"gateway", b"[::1]"]
                        ),
                    )
                ),
            )
        )
    if draw(st.booleans()):
        headers.append(("X-API-Key", draw(st.one_of(st.just(creds.key.encode()), header_safe(40)))))
    if draw(st.booleans()):
        headers.append(("Cookie", draw(cookies(creds))))
    for name in (
        "Origin",
        "Sec-Fetch-Site",
        "X-Request-Id",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "Accept",
        "Referer",
    ):
        if draw(st.integers(0, 5)) == 0:
            headers.append(
                (
                    name,
                    draw(
                        st.one_of(
                            header_safe(40),
                            st.sampled_from(
                                [
                                    b"http://[",
                                    b"null",
                                    b"http://127.0.0.1",
                                    b"same-origin",
                                    b"cross-site",
                                    b"text/html",
                                    b"https://attacker.example",
                                ]
                            ),
                        )
                    ),
                )
            )
    if draw(st.integers(0, 7)) == 0:  # any header at all
        name = draw(mostly(st.text(TOKEN, min_size=1, max_size=12), header_safe(12)))
        headers.append((name or "X", draw(header_safe(40))))
    body = b""
    if method not in (b"GET", b"HEAD") or draw(st.integers(0, 9)) == 0:
        headers.append(("Content-Type", draw(content_types())))
        body = draw(st.one_of(form_bodies(creds), multipart_bodies(creds), json_bodies(), junk(80)))
        wrap = draw(st.integers(0, 9))
        if wrap == 0:
            headers.append(("Content-Encoding", draw(st.sampled_from(ENCODINGS))))
            if draw(st.booleans()):
                body = gzip.compress(body)
        elif wrap == 1:
            headers.append(("Transfer-Encoding", "chunked"))
            body = chunked(body) if draw(st.booleans()) else body + b"\r\n0\r\n\r\n"
    return build(method, target, headers, body)


@st.composite
def envelope_ok(
    draw: Callable[..., Any], templates: list[str], creds: Credentials, methods: list[str]
) -> bytes:
    method = draw(st.sampled_from(methods))
    target = draw(targets(templates))
    cookie = f"{SESSION_COOKIE}={creds.session}; {CSRF_COOKIE}={creds.csrf_cookie}"
    if draw(st.booleans()):
        cookie += f"; {FLASH_COOKIE}={creds.flash}"
    headers: list[Header] = [("X-API-Key", creds.key), ("Cookie", cookie)]
    if draw(st.booleans()):
        headers.append(("Sec-Fetch-Site", draw(st.sampled_from(["same-origin", "none"]))))
    body = b""
    if method in ("POST", "DELETE"):
        kind = draw(st.sampled_from(["form", "form", "multipart", "json"]))
        if kind == "form":
            charset = draw(st.sampled_from(["", "", "; charset=utf-8", "; charset=latin-1"]))
            headers.append(("Content-Type", "application/x-www-form-urlencoded" + charset))
            fields = draw(form_bodies(creds))
            body = f"csrf={creds.form_token}&".encode() + fields
        elif kind == "multipart":
            headers.append(("Content-Type", "multipart/form-data; boundary=zz"))
            token = '--zz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
            body = (
                token.encode() + creds.form_token.encode() + b"\r\n" + draw(multipart_bodies(creds))
            )
        else:
            headers.append(("Content-Type", "application/json"))
            body = draw(json_bodies())
    return build(method, target, headers, body)


def credentials(gateway: Client, keyed: bool) -> Credentials:
    keys = gateway.app[KEYS]
    session = keys.new_session()
    csrf_cookie = keys.new_csrf()
    signed_in = keys.session(session) if keyed else None
    return Credentials(
        key=API_KEY,
        session=session,
        csrf_cookie=csrf_cookie,
        form_token=keys.form_token(csrf_cookie, signed_in),
        flash=keys.flash_token(Flash("error", XSS)),
    )


def served_5xx() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "gistsync_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["status"].startswith("5"):
                    total += sample.value
    return total


def routes_served() -> Counter[str]:
    counts: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name == "gistsync_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["route"]] += int(sample.value)
    return counts


def fuzz(port: int, template: str, methods: list[str], creds: Credentials, tally: Tally) -> None:
    """PER_ROUTE requests aimed at one route (Hypothesis alone would favour a few)."""

    @settings(
        max_examples=PER_ROUTE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests([template], creds, methods))
    def one(request: bytes) -> None:
        tally.examples += 1
        try:
            answer = exchange(port, request)
        except AssertionError:
            tally.statuses[0] += 1  # closed without an answer: never a 5xx
            return
        tally.statuses[answer.status] += 1
        if answer.status >= 500:
            tally.fives.append(f"{answer.status} for {request[:300]!r}: {answer.text[:300]}")

    one()


@pytest.mark.slow
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key"])
async def test_no_bytes_give_a_5xx(
    start_gateway: StartGateway, peers: FakeServices, caplog: pytest.LogCaptureFixture, keyed: bool
) -> None:
    world = World(everyone_exists=True)
    world.add_user("OctoCat", gist("aa11", XSS, ("x.html", "HTML")))
    world.add_user("alice", gist("bb22", "Hi", ("a.md", None)))
    world.track("alice")
    world.track("OctoCat")
    world.serve(peers)
    gateway = await start_gateway(
        gateway_api_key=API_KEY if keyed else None,
        gateway_rate_limit_per_minute=1_000_000,
        gateway_rate_limit_burst=1_000_000,
        gateway_auth_failures_per_minute=1_000_000,
        gateway_auth_failure_burst=1_000_000,
        gateway_body_timeout_seconds=1.0,
        gateway_header_timeout_seconds=1.0,
        gateway_ui_settle_seconds=0,
        request_timeout_seconds=5.0,
        fetch_timeout_seconds=5.0,
    )
    assert gateway.server.port is not None
    templates = routes(gateway)
    fives_before, routes_before = served_5xx(), routes_served()
    started = time.monotonic()
    tally = Tally()
    for template, methods in templates.items():
        creds = credentials(gateway, keyed)  # afresh: /logout revokes the session it is sent
        await asyncio.to_thread(fuzz, gateway.server.port, template, methods, creds, tally)
    elapsed = time.monotonic() - started
    reached = routes_served() - routes_before
    print(
        f"fuzz ({'key' if keyed else 'no key'}): {tally.examples} requests in {elapsed:.1f} s, "
        f"by status {dict(sorted(tally.statuses.items()))}, {len(reached)} routes reached"
    )
    assert tally.examples >= PER_ROUTE * len(templates)
    assert tally.fives == []
    assert served_5xx() == fives_before
    assert failures(caplog) == []
    assert set(templates) <= set(reached), set(templates) - set(reached)
