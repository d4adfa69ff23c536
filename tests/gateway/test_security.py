"""Keys, sessions, CSRF tokens, flash messages and the small checks around them."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import ValidationError

from gateway.origin import cross_site
from gateway.security import Flash, Keys, client_of, local_path
from gateway.settings import Settings

SECRET = b"s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def keys(api_key: str | None = "k" * 20, clock: Clock | None = None, **kwargs: object) -> Keys:
    return Keys(api_key, SECRET, clock=clock or Clock(), **kwargs)  # type: ignore[arg-type]


def test_the_api_key_compares_exactly() -> None:
    k = keys()
    assert k.key_ok("k" * 20)
    assert not k.key_ok("k" * 19)
    assert not k.key_ok("")
    assert not k.key_ok(None)
    assert not keys(None).key_ok("anything")
    assert not keys(None).enforced


def test_signatures_are_per_purpose_and_tamper_evident() -> None:
    k = keys()
    token = k.sign("csrf", "abc")
    assert k.unsign("csrf", token) == "abc"
    assert k.unsign("session", token) is None
    assert k.unsign("csrf", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert k.unsign("csrf", "no-dot") is None
    assert k.unsign("csrf", None) is None
    other = Keys("k" * 20, b"t" * 32)
    assert other.unsign("csrf", token) is None


def test_sessions_expire_and_end_with_a_new_key() -> None:
    clock = Clock()
    k = keys(clock=clock, session_max_age=60)
    session = k.new_session()
    assert k.session_ok(session)
    clock.now += 61
    assert not k.session_ok(session)
    clock.now -= 61
    rotated = Keys("n" * 20, SECRET, clock=clock)  # same cookie secret, another key
    assert not rotated.session_ok(session)
    assert not k.session_ok("123.abc")


def test_sessions_are_random_even_within_one_second() -> None:
    k = keys()  # a clock that does not move
    first, second = k.new_session(), k.new_session()
    assert first != second
    one, two = k.session(first), k.session(second)
    assert one is not None and two is not None
    assert one.id != two.id and len(one.id) >= 21  # 128 random bits


def test_a_revoked_session_ends_until_it_would_have_expired() -> None:
    clock = Clock()
    k = keys(clock=clock, session_max_age=60)
    token, other = k.new_session(), k.new_session()
    session = k.session(token)
    assert session is not None
    k.revocations.add(session.digest, session.expires)
    assert not k.session_ok(token)
    assert k.session_ok(other)
    clock.now += 61
    assert len(k.revocations) == 1
    k.revocations.add("0" * 32, clock.now + 10)
    assert session.digest not in k.revocations  # it would have expired: forgotten


def test_revocations_are_bounded_forgetting_the_soonest_to_expire() -> None:
    clock = Clock()
    k = keys(clock=clock)
    k.revocations.max_entries = 2
    for n, expires in enumerate((30, 10, 20)):
        k.revocations.add(f"{n:032x}", clock.now + expires)
    assert len(k.revocations) == 2
    assert f"{1:032x}" not in k.revocations
    assert f"{0:032x}" in k.revocations and f"{2:032x}" in k.revocations


def test_csrf_tokens_are_bound_to_the_cookie_and_the_session() -> None:
    k = keys()
    cookie = k.new_csrf()
    session = k.session(k.new_session())
    assert session is not None
    signed_out = k.form_token(cookie, None)
    signed_in = k.form_token(cookie, session)
    assert k.csrf_ok(cookie, signed_out, None)
    assert k.csrf_ok(cookie, signed_in, session)
    assert not k.csrf_ok(cookie, signed_out, session)  # a token from before signing in
    assert not k.csrf_ok(cookie, signed_in, None)  # or after signing out
    other = k.session(k.new_session())
    assert not k.csrf_ok(cookie, signed_in, other)  # another session's
    assert not k.csrf_ok(k.new_csrf(), signed_out, None)  # another browser's cookie
    assert not k.csrf_ok(cookie, cookie, None)  # the cookie itself is not the token
    assert not k.csrf_ok(cookie, None, None)
    forged = "abc.def"
    assert not k.csrf_ok(forged, k.form_token(forged, None), None)


@pytest.mark.parametrize(
    "value",
    ["\udcff\udcfe", "caf\u00e9", "\x00", "a" * 5000, "x.\udce9", ".", "\u2603.\u2603"],
)
def test_tokens_and_keys_from_any_bytes_are_refused_never_an_error(value: str) -> None:
    k = keys()
    assert not k.key_ok(value)
    assert not k.session_ok(value)
    assert k.unsign("csrf", value) is None
    assert k.read_flash(value) is None
    assert not k.csrf_ok(value, value, None)
    assert not k.csrf_ok(k.new_csrf(), value, None)


def test_flash_messages_round_trip_and_refuse_forgeries() -> None:
    k = keys()
    flash = Flash("error", 'Nope: <b>"x"</b> ✓')
    assert k.read_flash(k.flash_token(flash)) == flash
    assert k.read_flash("eyJ4Ijox.fake") is None
    assert k.read_flash(k.sign("flash", "not-base64-json")) is None


def test_the_cookie_secret_follows_the_settings() -> None:
    with_key = Settings(gateway_api_key="k" * 20)
    one, two = Keys.from_settings(with_key), Keys.from_settings(with_key)
    assert two.unsign("csrf", one.new_csrf()) is not None  # gateways sharing a key agree
    bare = Settings(gateway_api_key=None)
    assert Keys.from_settings(bare).unsign("csrf", Keys.from_settings(bare).new_csrf()) is None
    shared = Settings(gateway_api_key=None, gateway_session_secret="s" * 16)
    token = Keys.from_settings(shared).new_csrf()
    assert Keys.from_settings(shared).unsign("csrf", token) is not None


def test_keys_are_long_enough_or_unset() -> None:
    assert Settings(gateway_api_key="").api_key is None
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(gateway_api_key="short")
    with pytest.raises(ValidationError):
        Settings(gateway_session_secret="short")


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("/users/alice?state=all", "/users/alice?state=all"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\nb", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_redirects_stay_on_this_site(candidate: str | None, expected: str) -> None:
    assert local_path(candidate) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, True),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Origin": "http://gistsync.test:8080"}, True),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "null"}, False),
        # Scheme, host and port are all compared.
        ({"Origin": "https://gistsync.test:8080"}, False),
        ({"Origin": "http://gistsync.test:8081"}, False),
        ({"Origin": "http://gistsync.test"}, False),
        ({"Origin": "http://GISTSYNC.test:8080"}, True),
        # Another port of the same host is the same site, but not the same origin.
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://gistsync.test:3000"}, False),
        # Nothing a browser would send is an origin of ours.
        ({"Origin": "http://["}, False),
        ({"Origin": "http://gistsync.test:8080/path"}, False),
        ({"Origin": "http://user@gistsync.test:8080"}, False),
        ({"Origin": "javascript://gistsync.test:8080"}, False),
        ({"Origin": "http://gistsync.test:99999"}, False),
        ({"Origin": "http://gistsync.test:8080\udcff"}, False),
    ],
)
def test_cross_site_requests_are_recognised(headers: dict[str, str], expected: bool) -> None:
    sent = CIMultiDictProxy(CIMultiDict({"Host": "gistsync.test:8080", **headers}))
    assert cross_site(sent, {"http"}, False) is not expected


def test_a_forwarded_host_counts_only_behind_a_trusted_proxy() -> None:
    headers = {
        "Host": "10.0.0.5:8080",
        "Origin": "https://gists.example",
        "X-Forwarded-Host": "gists.example",
        "X-Forwarded-Proto": "https",
    }
    request = make_mocked_request("POST", "/users", headers=headers)
    assert cross_site(request.headers, {"http"}, False)
    assert not cross_site(request.headers, {"http"}, True)


def test_behind_tls_the_origin_may_be_https() -> None:
    sent = CIMultiDictProxy(
        CIMultiDict({"Host": "gists.example", "Origin": "https://gists.example"})
    )
    assert cross_site(sent, {"http"}, False)  # the proxy's https is not known
    assert not cross_site(sent, {"http", "https"}, False)  # GATEWAY_COOKIE_SECURE=true


def test_the_client_is_the_peer_unless_a_proxy_is_trusted() -> None:
    headers = {"X-Forwarded-For": "1.1.1.1, 203.0.113.7"}
    request = make_mocked_request("POST", "/api/sync", headers=headers)
    assert client_of(request) != "203.0.113.7"
    assert client_of(request, trust_forwarded=True) == "203.0.113.7"
