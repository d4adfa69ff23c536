"""Reading a form body whatever bytes it holds: a body that cannot be read is the client's
mistake (400), never a failure of the gateway."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy

from gateway.context import SETTINGS
from gateway.problems import Problem

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
# What aiohttp raises when a body's bytes cannot be read as sent: broken chunks or
# compression, a broken multipart part.
BAD_BODY = (HttpProcessingError, RequestPayloadError)
# And for a form besides: a charset it does not know (LookupError), bytes that are not in the
# charset (UnicodeDecodeError, a ValueError), multipart it cannot parse (ValueError,
# AssertionError).
UNREADABLE = (ValueError, LookupError, AssertionError, *BAD_BODY)


def unreadable_body(exc: BaseException) -> Problem:
    """A body aiohttp could not decode, said in one line (its messages quote the request)."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    reason = lines[-1][:200] if lines else type(exc).__name__
    return Problem(400, f"The request body could not be read: {reason}", kind="unreadable-body")


async def read_form(request: web.Request) -> Form:
    """The form fields of the body (read once, then kept by aiohttp): 408 too slow, 413 too
    large, 400 not a form that can be read."""
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.gateway_body_timeout_seconds):
            return await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    except BAD_BODY as exc:
        raise unreadable_body(exc) from None
    except UNREADABLE as exc:
        reason = type(exc).__name__
        raise Problem(
            400,
            f"The form could not be read ({reason}): send it as UTF-8 "
            "application/x-www-form-urlencoded or multipart/form-data.",
            kind="invalid-form",
        ) from None


def text_field(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
