"""The middleware that decides, before any handler runs, whether a request may go on:

1. the `Host` names this gateway (421 otherwise: DNS rebinding), on every route;
2. a state change made by a page of another origin is refused (403), with a key or without;
3. state changes are rate limited per client (429);
4. forms carry a CSRF token bound to the browser and the session (403);
5. with GATEWAY_API_KEY set, the key (or, for pages, a session) is needed; wrong keys are
   throttled per client on every route (429).
"""

from __future__ import annotations

from urllib.parse import quote

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
from gateway.forms import read_form
from gateway.limits import retry_after
from gateway.origin import Hosts, cross_site
from gateway.problems import Problem
from gateway.security import (
    API_KEY_HEADER,
    AUTH_FAILURES,
    CSRF_COOKIE,
    CSRF_FIELD,
    KEYS,
    LIMITER,
    SESSION_COOKIE,
    Flash,
    Keys,
    client_of,
    see_other,
)
from gateway.settings import Settings

HOSTS = web.AppKey("hosts", Hosts)


def local_address(request: web.Request) -> str | None:
    """The address this connection came in on (what a probe or a scraper puts in Host)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


def check_host(request: web.Request, settings: Settings) -> None:
    hosts = request.app[HOSTS]
    local = local_address(request)
    named = list(request.headers.getall("Host", []))  # none: HTTP/1.0, not a browser
    if settings.gateway_trust_forwarded_for:
        named += [v for h in request.headers.getall("X-Forwarded-Host", []) for v in h.split(",")]
    for value in named:
        if not hosts.allows(value, local):
            raise Problem(
                421,
                "This gateway does not answer to that host name; list it in "
                "GATEWAY_ALLOWED_HOSTS if it is one of its names.",
                kind="unknown-host",
            )


def schemes_of(request: web.Request, settings: Settings) -> set[str]:
    """The schemes this gateway's pages may have: the connection's, and https when cookies
    are only sent over HTTPS (so a proxy terminates TLS in front)."""
    schemes = {"https" if request.secure else "http"}
    if settings.gateway_cookie_secure:
        schemes.add("https")
    return schemes


def refuse_cross_site(request: web.Request, settings: Settings, audience: Audience) -> None:
    schemes = schemes_of(request, settings)
    if not cross_site(request.headers, schemes, settings.gateway_trust_forwarded_for):
        return
    if audience is Audience.LEGACY:
        detail = (
            "This request came from another site; nothing was changed. To do it, open the "
            "address yourself."
        )
    else:
        detail = "This request came from another site; nothing was changed."
    raise Problem(403, detail, kind="cross-site")


def too_many(what: str, wait: float) -> Problem:
    return Problem(
        429,
        f"Too many {what} from this client; try again in {retry_after(wait)} s.",
        kind="rate-limited",
        headers={"Retry-After": retry_after(wait)},
    )


def rate_limit(request: web.Request, settings: Settings) -> None:
    wait = request.app[LIMITER].take(client_of(request, settings.gateway_trust_forwarded_for))
    if wait > 0:
        raise too_many("changes", wait)


def refuse_while_guessing(request: web.Request) -> None:
    """429 while this client has spent its budget of wrong keys, even for the right one: a
    guess must not be told apart from a refusal."""
    settings = request.app[SETTINGS]
    client = client_of(request, settings.gateway_trust_forwarded_for)
    wait = request.app[AUTH_FAILURES].peek(client)
    if wait > 0:
        raise too_many("wrong API keys", wait)


def count_failure(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    request.app[AUTH_FAILURES].take(client_of(request, settings.gateway_trust_forwarded_for))


async def check_csrf(request: web.Request, keys: Keys) -> None:
    form = await read_form(request)
    field = form.get(CSRF_FIELD)
    token = field if isinstance(field, str) else None
    session = keys.session(request.cookies.get(SESSION_COOKIE)) if keys.enforced else None
    if not keys.csrf_ok(request.cookies.get(CSRF_COOKIE), token, session):
        raise Problem(
            403,
            "This form has expired or did not come from this site; nothing was changed. "
            "Reload the page and try again.",
        )


def unauthorized() -> Problem:
    return Problem(
        401,
        f"This gateway needs its API key: send it in the {API_KEY_HEADER} header.",
        kind="unauthorized",
        headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
    )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    check_host(request, settings)
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route: nothing to protect
    audience = audience_of(request)
    if audience is Audience.OPEN:
        return await handler(request)
    keys = request.app[KEYS]
    writes = changes_state(request)
    if writes:
        # Before the rate limit: a hostile page must not spend the operator's budget.
        refuse_cross_site(request, settings, audience)
        rate_limit(request, settings)
    if audience is Audience.UI and request.method == "POST":
        await check_csrf(request, keys)
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
    offered = request.headers.get(API_KEY_HEADER)
    if offered is None:
        raise unauthorized()
    refuse_while_guessing(request)
    if keys.key_ok(offered):
        return await handler(request)
    count_failure(request)
    raise unauthorized()
