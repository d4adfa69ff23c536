"""The HTTP server around the application: bounded connections and quiet refusals.

- A request's line and headers must arrive within GATEWAY_HEADER_TIMEOUT_SECONDS of their
  first byte, and a connection with no request in progress is closed after
  GATEWAY_IDLE_TIMEOUT_SECONDS (aiohttp's keep-alive timer, which it also starts when a
  connection opens). Half-open and trickling connections cannot pile up.
- Bytes that are not HTTP are answered 400 by aiohttp before the application sees them; they
  are the client's mistake, so they make one WARNING line without a traceback, at most one
  per `MalformedLog.interval` (with the count of the ones left out), and a metric.

aiohttp offers no hook for the first point, so the connection handler is subclassed; the
tests of `tests/gateway/test_server.py` pin the behaviour against an aiohttp upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from gateway.metrics import MALFORMED
from gateway.settings import Settings

log = logging.getLogger("gateway.server")


class MalformedLog:
    """One WARNING line per malformed request, at most one per `interval` seconds."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")
        self._left_out = 0

    def note(self, client: str | None, exc: HttpProcessingError) -> None:
        MALFORMED.inc()
        now = self.clock()
        if now - self._last < self.interval:
            self._left_out += 1
            return
        lines = str(exc.message or "").splitlines()
        extra: dict[str, Any] = {
            "client": client or "unknown",
            "reason": lines[0][:200] if lines else type(exc).__name__,
        }
        if self._left_out:
            extra["left_out"] = self._left_out
        log.warning("malformed HTTP request refused", extra=extra)
        self._last, self._left_out = now, 0


class Connection(RequestHandler):
    """aiohttp's connection handler with a deadline on a request's head."""

    def __init__(
        self, manager: web.Server, *, header_timeout: float, malformed: MalformedLog, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self.malformed = malformed
        self._head_deadline: asyncio.TimerHandle | None = None

    def _between_requests(self) -> bool:
        return self._current_request is None and not self._messages

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._stop_head_deadline()  # a head arrived, or a request is being answered
        elif self._head_deadline is None and data:
            self._head_deadline = self._loop.call_later(self.header_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_deadline = None
        waiting = self._waiter is not None and not self._waiter.done()
        if self._between_requests() and waiting:
            self.log_debug("request head too slow, connection closed")
            self.force_close()

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # aiohttp drains a body the handler left unread after the answer; a body that cannot
        # be decoded fails there, and that is the client's doing, already answered.
        if isinstance(kwargs.get("exc_info"), HttpProcessingError | RequestPayloadError):
            self.log_debug("unreadable request body left unread", exc_info=False)
            return
        super().log_exception(*args, **kwargs)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        self.malformed.note(request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already on its way")
        lines = str(exc.message or "").splitlines()
        reason = lines[0][:200] if lines else "not valid HTTP"
        response = web.Response(
            status=status, text=f"Bad request: {reason}\n", content_type="text/plain"
        )
        response.force_close()
        return response


class GatewayServer(web.Server):
    def __init__(
        self,
        handler: Any,
        *,
        header_timeout: float,
        malformed: MalformedLog,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.header_timeout = header_timeout
        self.malformed = malformed

    def __call__(self) -> RequestHandler:
        return Connection(
            self,
            loop=self._loop,
            header_timeout=self.header_timeout,
            malformed=self.malformed,
            **self._kwargs,
        )


class GatewayRunner(web.AppRunner):
    """`AppRunner` whose server bounds its connections (see the module's docstring)."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("keepalive_timeout", settings.gateway_idle_timeout_seconds)
        super().__init__(app, **kwargs)
        self.header_timeout = settings.gateway_header_timeout_seconds
        self.malformed = MalformedLog()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            header_timeout=self.header_timeout,
            malformed=self.malformed,
            **plain._kwargs,
        )
