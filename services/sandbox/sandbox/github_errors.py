"""GitHub's error bodies (the spec's `basic-error` / `validation-error`) and fault replies."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from sandbox.faults import Fault
from sandbox.web_common import json_response

DOCS = "https://docs.github.com/rest"
DOCS_GET_USER = "https://docs.github.com/rest/users/users#get-a-user"
DOCS_LIST_GISTS = "https://docs.github.com/rest/gists/gists#list-gists-for-a-user"
DOCS_RATE_LIMITS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
DOCS_SECONDARY = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
TIMEOUT_MESSAGE = (
    "We couldn't respond to your request in time. Sorry about that. Please try resubmitting "
    "your request and contact us if the problem persists."
)


def error_body(message: str, status: int, documentation_url: str = DOCS) -> dict[str, Any]:
    # GitHub sends the status as a string in the body.
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def error_response(
    message: str,
    status: int,
    documentation_url: str = DOCS,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(error_body(message, status, documentation_url), status, headers)


def not_found(documentation_url: str = DOCS) -> web.Response:
    return error_response("Not Found", 404, documentation_url)


def bad_credentials() -> web.Response:
    return error_response("Bad credentials", 401)


def validation_failed(field: str, documentation_url: str) -> web.Response:
    body = {
        "message": "Validation Failed",
        "errors": [{"resource": "Gist", "field": field, "code": "invalid"}],
        "documentation_url": documentation_url,
        "status": "422",
    }
    return json_response(body, 422)


def primary_exceeded(status: int, who: str, authorized: bool) -> web.Response:
    if authorized:
        message = f"API rate limit exceeded for {who}."
    else:
        message = (
            f"API rate limit exceeded for {who}. (But here's the good news: Authenticated "
            "requests get a higher rate limit. Check out the documentation for more details.)"
        )
    return error_response(message, status, DOCS_RATE_LIMITS)


def secondary_exceeded(status: int, retry_after: int) -> web.Response:
    return error_response(
        SECONDARY_MESSAGE, status, DOCS_SECONDARY, {"retry-after": str(retry_after)}
    )


def fault_response(fault: Fault, error_status: int) -> web.Response:
    if fault is Fault.TIMEOUT:
        return error_response(TIMEOUT_MESSAGE, 504)
    if fault is Fault.RATE_LIMIT:
        return secondary_exceeded(429, 1)
    return error_response(_phrase(error_status), error_status)


def _phrase(status: int) -> str:
    if status == 500:
        return "Server Error"  # GitHub's wording
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"
