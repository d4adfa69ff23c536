"""The gateway's HTTP metrics, labelled by route template (never the raw path, so a login
never becomes a label), method and status."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Gauge, Histogram

from gateway.context import route_template

REQUESTS = Counter(
    "gistsync_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "gistsync_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("gistsync_http_requests_in_flight", "HTTP requests being answered.")
# Refused by the HTTP parser before any route: not in the counters above.
MALFORMED = Counter(
    "gistsync_http_malformed_requests_total", "Requests refused as not valid HTTP (400)."
)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    IN_FLIGHT.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        IN_FLIGHT.dec()
        route = route_template(request) or "unmatched"
        # Any method a client makes up would be a new series: only the known ones are kept.
        method = request.method if request.method in METHODS else "other"
        REQUESTS.labels(route, method, str(status)).inc()
        LATENCY.labels(route, method, str(status)).observe(time.perf_counter() - started)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
