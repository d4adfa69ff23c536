"""Pipedrive error envelopes and fault replies."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.faults import Fault
from sandbox.web_common import json_response

ERROR_INFO = "Please check developers.pipedrive.com"

# Verbatim what Pipedrive answered in 2026 (see API-NOTES.md): no data/additional_data here.
UNAUTHORIZED: dict[str, Any] = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": ERROR_INFO,
}


class ApiError(Exception):
    """Raised by handlers; rendered as the error envelope."""

    def __init__(self, status: int, error: str, error_info: str = ERROR_INFO) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.error_info = error_info


class BadRequest(ApiError):
    def __init__(self, error: str) -> None:
        super().__init__(400, error)


class NotFound(ApiError):
    def __init__(self) -> None:
        # The only 404 body the spec documents (convert endpoints), used for every entity.
        super().__init__(404, "Entity was not found", "Object was not found.")


def envelope(error: str, error_info: str = ERROR_INFO) -> dict[str, Any]:
    return {
        "success": False,
        "error": error,
        "error_info": error_info,
        "data": None,
        "additional_data": None,
    }


def error_response(
    status: int,
    error: str,
    error_info: str = ERROR_INFO,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(envelope(error, error_info), status, headers)


def unauthorized() -> web.Response:
    return json_response(UNAUTHORIZED, 401)


def too_many_requests(retry_after: int, error: str = "Request over limit") -> web.Response:
    return error_response(429, error, headers={"Retry-After": str(retry_after)})


def fault_response(fault: Fault, error_status: int) -> web.Response:
    if fault is Fault.TIMEOUT:
        return error_response(504, "Gateway timeout")
    if fault is Fault.RATE_LIMIT:
        return too_many_requests(1)
    return error_response(error_status, "Internal server error")
