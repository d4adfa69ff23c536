"""Who may do what: the API key, page sessions, CSRF tokens and signed flash messages, and
the small checks around them. The middleware that applies them is `guard.py`.

Every cookie is signed (HMAC-SHA256, one purpose per cookie kind) so the gateway stays
stateless: any instance that shares the secret can check any cookie. Whatever a client sends
is checked as bytes it chose: a value that is not ASCII is simply not a valid token.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from gateway.limits import RateLimiter
from gateway.sessions import Revocations, Session
from gateway.settings import Settings

API_KEY_HEADER = "X-API-Key"
SESSION_COOKIE = "gistsync_session"
CSRF_COOKIE = "gistsync_csrf"
CSRF_FIELD = "csrf"
FLASH_COOKIE = "gistsync_flash"
FLASH_MAX_AGE = 60
MAX_TOKEN = 4096

Level = Literal["ok", "error"]


@dataclass(frozen=True)
class Flash:
    """A one-time message for the next page: what a form did, or why it could not."""

    level: Level
    text: str


def as_bytes(text: str) -> bytes:
    """A header or form value as the bytes the client sent (aiohttp keeps undecodable bytes
    as surrogates), so comparing it never fails on what a client chose to send."""
    return text.encode("utf-8", "surrogateescape")


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
        revocations: Revocations | None = None,
    ) -> None:
        self.api_key = api_key
        self._secret = secret
        self.protect_reads = protect_reads
        self.session_max_age = session_max_age
        self.secure_cookies = secure_cookies
        self.clock = clock
        self.revocations = revocations or Revocations(clock=clock)

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
        return hmac.compare_digest(as_bytes(offered), self.api_key.encode())

    # --- signing --------------------------------------------------------------------------

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.digest(self._secret, f"{purpose}|{value}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, token: str | None) -> str | None:
        """The signed value, or None when the token is missing, malformed or forged."""
        if not token or len(token) > MAX_TOKEN or not token.isascii() or "." not in token:
            return None
        value, mac = token.rsplit(".", 1)
        return value if hmac.compare_digest(mac, self._mac(purpose, value)) else None

    # --- sessions: a random id, an expiry and the key's fingerprint (a new key ends them) --

    def _fingerprint(self) -> str:
        return self._mac("key", self.api_key or "")[:16]

    def new_session(self) -> str:
        expires = int(self.clock()) + self.session_max_age
        return self.sign("session", f"{secrets.token_urlsafe(16)}:{expires}:{self._fingerprint()}")

    def session(self, token: str | None) -> Session | None:
        """The live session a cookie names: signed by us, for this key, not expired, not
        signed out."""
        value = self.unsign("session", token)
        parts = value.split(":") if value is not None else []
        if len(parts) != 3:
            return None
        session_id, expires, fingerprint = parts
        if not (session_id and expires.isdigit() and int(expires) > self.clock()):
            return None
        if not hmac.compare_digest(fingerprint, self._fingerprint()):
            return None
        session = Session(session_id, int(expires))
        return None if session.digest in self.revocations else session

    def session_ok(self, token: str | None) -> bool:
        return self.session(token) is not None

    # --- CSRF: a signed random cookie; forms carry a token derived from it and the session,
    # so a token is good only with this browser's cookie and only in this session ----------

    def new_csrf(self) -> str:
        return self.sign("csrf", secrets.token_urlsafe(18))

    def csrf_cookie_ok(self, cookie: str | None) -> bool:
        return self.unsign("csrf", cookie) is not None

    def form_token(self, cookie: str, session: Session | None) -> str:
        return self._mac("form", f"{cookie}|{session.id if session else ''}")

    def csrf_ok(self, cookie: str | None, field: str | None, session: Session | None) -> bool:
        if not cookie or not field or not field.isascii() or not self.csrf_cookie_ok(cookie):
            return False
        return hmac.compare_digest(field, self.form_token(cookie, session))

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
# Wrong API keys, per client, on every route (and the sign-in form).
AUTH_FAILURES = web.AppKey("auth_failures", RateLimiter)


def see_other(location: str) -> web.Response:
    """303: after a form, the browser GETs the next page (post/redirect/get)."""
    return web.Response(status=303, headers={"Location": location})


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path on this site, else `default`: no open redirects."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return default
    if "\\" in candidate or any(ord(c) < 0x20 or 0xD800 <= ord(c) < 0xE000 for c in candidate):
        return default
    return candidate


def client_of(request: web.Request, trust_forwarded: bool = False) -> str:
    """Who is asking, for the rate limits: the peer address, or behind a trusted proxy the
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
