"""Failures as RFC 9457 problem details: one exception the handlers raise, rendered as
`application/problem+json` for programs (and as a page or the predecessor's answers for the
other audiences, in `app.py`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from gistsync.errors import PublishError, RemoteError, RequestTimeout

PROBLEM_JSON = "application/problem+json"
# Types a client may branch on; anything else is `about:blank` (the status says it all).
TYPE_BASE = "urn:gistsync:problem:"


class Problem(Exception):
    """An answer that is not a success: its status, a one-line `detail` fit for a person,
    and optionally a `kind` (the problem type, for programs) and extension members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extensions = extensions

    @property
    def type(self) -> str:
        return TYPE_BASE + self.kind if self.kind else "about:blank"

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "request_id": request_id,
            **self.extensions,
        }


def render(problem: Problem, request_id: str) -> web.Response:
    text = json.dumps(problem.body(request_id), ensure_ascii=False)
    response = web.Response(
        status=problem.status,
        # A detail may quote what a client sent, undecodable bytes included.
        body=text.encode("utf-8", "replace"),
        content_type=PROBLEM_JSON,
        charset="utf-8",
    )
    response.headers.update(problem.headers)
    return response


# What aiohttp itself raises (no route, wrong method, body too large), said plainly.
_HTTP_DETAILS = {
    404: "There is nothing at this address.",
    405: "This address does not answer that method; the Allow header lists the ones it does.",
    408: "The request body did not arrive in time.",
    413: "The request body is larger than this gateway accepts.",
}
# Headers of an aiohttp exception that describe its own text body, not the failure.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


def from_http(exc: web.HTTPException) -> Problem:
    detail = _HTTP_DETAILS.get(exc.status) or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return Problem(exc.status, detail, headers=headers)


def from_upstream(exc: Exception, *, timeout_status: int = 504) -> Problem:
    """A failed exchange with another service, as an answer that says what happened and
    whether anything changed."""
    if isinstance(exc, RequestTimeout):
        return Problem(
            timeout_status,
            "A gistsync service did not answer in time; try again shortly.",
            kind="upstream-timeout",
        )
    if isinstance(exc, PublishError):
        return Problem(
            503,
            "The message broker is not reachable; nothing was changed. Try again shortly.",
            kind="broker-unavailable",
        )
    if isinstance(exc, RemoteError):
        return Problem(502, f"A gistsync service failed: {exc.detail}", kind="upstream-failure")
    raise TypeError(f"not an upstream failure: {exc!r}")


UPSTREAM_FAILURES = (RequestTimeout, PublishError, RemoteError)
