"""Who may do what: the API key, page sessions, CSRF tokens, signed flash messages, and the
middleware that applies them (with the rate limit) before any handler runs.

Every cookie is signed (HMAC-SHA256, one purpose per cookie kind) so the gateway stays
stateless: any instance that shares the secret can check any cookie.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.context import (
    SETTINGS,
    SIGN_IN_PATHS,
    Audience,
    audience_of,
    changes_state,
    route_template,
)
from gateway.limits import RateLimiter, retry_after
from gateway.problems import Problem
from gateway.settings import Settings

API_KEY_HEADER = "X-API-Key"
SESSION_COOKIE = "gistsync_session"
CSRF_COOKIE = "gistsync_csrf"
CSRF_FIELD = "csrf"
FLASH_COOKIE = "gistsync_flash"
FLASH_MAX_AGE = 60

Level = Literal["ok", "error"]


@dataclass(frozen=True)
class Flash:
    """A one-time message for the next page: what a form did, or why it could not."""

    level: Level
    text: str


class Keys:
    """The API key and the secret that signs cookies, with what is built from them."""

    def __init__(
        self,
        api_key: str | None,
        secret: bytes,
        *,
        protect_reads: bool = True,
        session_max_age: int = 12 * 3600,
        secure_cookies: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self._secret = secret
        self.protect_reads = protect_reads
        self.session_max_age = session_max_age
        self.secure_cookies = secure_cookies
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        api_key = settings.api_key
        if settings.gateway_session_secret is not None:
            secret = settings.gateway_session_secret.get_secret_value().encode()
        elif api_key is not None:
            # Instances sharing the key share the secret, with no extra setting.
            secret = hmac.digest(api_key.encode(), b"gistsync gateway cookies", "sha256")
        else:
            secret = secrets.token_bytes(32)
        return cls(
            api_key,
            secret,
            protect_reads=settings.gateway_protect_reads,
            session_max_age=settings.gateway_session_max_age_seconds,
            secure_cookies=settings.gateway_cookie_secure,
        )

    @property
    def enforced(self) -> bool:
        return self.api_key is not None

    def key_ok(self, offered: str | None) -> bool:
        if self.api_key is None or not offered:
            return False
        return hmac.compare_digest(offered.encode(), self.api_key.encode())

    # --- signing --------------------------------------------------------------------------

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.digest(self._secret, f"{purpose}|{value}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, token: str | None) -> str | None:
        """The signed value, or None when the token is missing, malformed or forged."""
        if not token or len(token) > 4096 or "." not in token:
            return None
        value, mac = token.rsplit(".", 1)
        return value if hmac.compare_digest(mac, self._mac(purpose, value)) else None

    # --- sessions: an expiry and the key's fingerprint, so a new key ends every session --

    def _fingerprint(self) -> str:
        return self._mac("key", self.api_key or "")[:16]

    def new_session(self) -> str:
        expires = int(self.clock()) + self.session_max_age
        return self.sign("session", f"{expires}:{self._fingerprint()}")

    def session_ok(self, token: str | None) -> bool:
        value = self.unsign("session", token)
        if value is None or ":" not in value:
            return False
        expires, fingerprint = value.split(":", 1)
        return (
            expires.isdigit()
            and int(expires) > self.clock()
            and hmac.compare_digest(fingerprint, self._fingerprint())
        )

    # --- CSRF: a signed random token in a cookie, repeated in every form ----------------

    def new_csrf(self) -> str:
        return self.sign("csrf", secrets.token_urlsafe(18))

    def csrf_cookie_ok(self, token: str | None) -> bool:
        return self.unsign("csrf", token) is not None

    def csrf_ok(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or not self.csrf_cookie_ok(cookie):
            return False
        return hmac.compare_digest(cookie.encode(), field.encode())

    # --- flash messages -------------------------------------------------------------------

    def flash_token(self, flash: Flash) -> str:
        raw = json.dumps([flash.level, flash.text[:500]]).encode()
        return self.sign("flash", base64.urlsafe_b64encode(raw).rstrip(b"=").decode())

    def read_flash(self, token: str | None) -> Flash | None:
        value = self.unsign("flash", token)
        if value is None:
            return None
        try:
            level, text = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except (ValueError, TypeError):
            return None
        if level not in ("ok", "error") or not isinstance(text, str):
            return None
        return Flash(level, text)

    # --- cookies on a response ------------------------------------------------------------

    def set_cookie(
        self, response: web.StreamResponse, name: str, value: str, max_age: int | None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
        )

    def set_flash(self, response: web.StreamResponse, flash: Flash) -> None:
        self.set_cookie(response, FLASH_COOKIE, self.flash_token(flash), FLASH_MAX_AGE)

    def clear_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.secure_cookies, samesite="Lax")


KEYS = web.AppKey("keys", Keys)
LIMITER = web.AppKey("limiter", RateLimiter)


def see_other(location: str) -> web.Response:
    """303: after a form, the browser GETs the next page (post/redirect/get)."""
    return web.Response(status=303, headers={"Location": location})


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path on this site, else `default`: no open redirects."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return default
    if "\\" in candidate or any(ord(c) < 0x20 for c in candidate):
        return default
    return candidate


def same_origin(request: web.Request, trust_forwarded: bool = False) -> bool:
    """False when the browser says the request comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # an old browser or a program: the token decides
    hosts = {request.host.lower()}
    if trust_forwarded and "X-Forwarded-Host" in request.headers:
        hosts.add(request.headers["X-Forwarded-Host"].split(",")[-1].strip().lower())
    return origin != "null" and urlsplit(origin).netloc.lower() in hosts


def client_of(request: web.Request, trust_forwarded: bool = False) -> str:
    """Who is asking, for the rate limit: the peer address, or behind a trusted proxy the
    address that proxy appended last to X-Forwarded-For (earlier ones are the client's say)."""
    if trust_forwarded:
        hops = [
            hop.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")
            if hop.strip()
        ]
        if hops:
            return hops[-1]
    return request.remote or "unknown"


async def check_csrf(request: web.Request, keys: Keys, settings: Settings) -> None:
    if not same_origin(request, settings.gateway_trust_forwarded_for):
        raise Problem(403, "This form was sent from another site; nothing was changed.")
    try:
        async with asyncio.timeout(settings.gateway_body_timeout_seconds):
            form = await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    field = form.get(CSRF_FIELD)
    token = field if isinstance(field, str) else None
    if not keys.csrf_ok(request.cookies.get(CSRF_COOKIE), token):
        raise Problem(
            403,
            "This form has expired or did not come from this site; nothing was changed. "
            "Reload the page and try again.",
        )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Rate limit, CSRF check and authentication, in that order, before the handler.

    The rate limit comes first so that guessing the key is throttled too.
    """
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route: nothing to protect
    audience = audience_of(request)
    if audience is Audience.OPEN:
        return await handler(request)
    settings = request.app[SETTINGS]
    keys = request.app[KEYS]
    writes = changes_state(request)
    if writes:
        wait = request.app[LIMITER].take(client_of(request, settings.gateway_trust_forwarded_for))
        if wait > 0:
            raise Problem(
                429,
                f"Too many changes from this client; try again in {retry_after(wait)} s.",
                kind="rate-limited",
                headers={"Retry-After": retry_after(wait)},
            )
    if audience is Audience.UI and request.method == "POST":
        await check_csrf(request, keys, settings)
    needs_key = keys.enforced and (writes or keys.protect_reads)
    if not needs_key or route_template(request) in SIGN_IN_PATHS:
        return await handler(request)
    if audience is Audience.UI:
        if keys.session_ok(request.cookies.get(SESSION_COOKIE)):
            return await handler(request)
        back = request.path_qs if request.method == "GET" else "/"
        response = see_other("/login?next=" + quote(back, safe="/"))
        keys.set_flash(response, Flash("error", "Sign in with the gateway's API key first."))
        return response
    if keys.key_ok(request.headers.get(API_KEY_HEADER)):
        return await handler(request)
    raise Problem(
        401,
        f"This gateway needs its API key: send it in the {API_KEY_HEADER} header.",
        kind="unauthorized",
        headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
    )
