"""Keys, sessions, CSRF tokens, flash messages and the small checks around them."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from gateway.security import Flash, Keys, client_of, local_path, same_origin
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


def test_csrf_tokens_must_match_the_cookie_and_be_ours() -> None:
    k = keys()
    token = k.new_csrf()
    assert k.csrf_ok(token, token)
    assert not k.csrf_ok(token, k.new_csrf())
    assert not k.csrf_ok(token, None)
    forged = "abc.def"
    assert not k.csrf_ok(forged, forged)


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
    ],
)
def test_cross_site_requests_are_recognised(headers: dict[str, str], expected: bool) -> None:
    request = make_mocked_request(
        "POST", "/users", headers={"Host": "gistsync.test:8080", **headers}
    )
    assert same_origin(request) is expected


def test_a_forwarded_host_counts_only_behind_a_trusted_proxy() -> None:
    headers = {
        "Host": "10.0.0.5:8080",
        "Origin": "https://gists.example",
        "X-Forwarded-Host": "gists.example",
    }
    request = make_mocked_request("POST", "/users", headers=headers)
    assert not same_origin(request)
    assert same_origin(request, trust_forwarded=True)


def test_the_client_is_the_peer_unless_a_proxy_is_trusted() -> None:
    headers = {"X-Forwarded-For": "1.1.1.1, 203.0.113.7"}
    request = make_mocked_request("POST", "/api/sync", headers=headers)
    assert client_of(request) != "203.0.113.7"
    assert client_of(request, trust_forwarded=True) == "203.0.113.7"
