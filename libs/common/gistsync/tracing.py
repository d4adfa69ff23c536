"""Distributed tracing with OpenTelemetry, off unless the standard variables ask for it.

On when `OTEL_TRACES_EXPORTER` names `otlp`, or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and neither
`OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise. Off, nothing of the
SDK or the instrumentations is even imported, and the helpers below do nothing.

On, spans go over OTLP/HTTP (the exporter reads the usual `OTEL_EXPORTER_OTLP_*` variables)
in batches, and the process is traced where work crosses a boundary:

- aiohttp server: a SERVER span per request (probes and scrapes left out);
- httpx: a CLIENT span per call to GitHub or Pipedrive;
- aio-pika: a PRODUCER span per publish, the W3C `traceparent` in the message's headers;
- the delivery path (`transport/delivery.py`, through `consuming`): a CONSUMER span per
  delivered message, child of its producer, for the whole handling, retries included. The
  maintained instrumentation's consumer span would end as soon as the message is handed to
  its key's task, before any of the handling it should contain.
- `work`: a span of the service's own (a poll), with its log fields.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gistsync.logcontext import bound

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
    from opentelemetry.trace import Link, SpanKind, Tracer, TraceState
    from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

# Probes and scrapes come every few seconds and say nothing of the work.
QUIET_PATHS = "/healthz,/readyz,/metrics"
FLUSH_SECONDS = 3.0
# The standard variables a deployment sets for every service (compose passes these on);
# the SDK and the exporter read the rest of `OTEL_*` themselves.
DEPLOYMENT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
)

_tracer: Tracer | None = None
_getter: Any = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return "otlp" in exporters or bool(endpoint)


def on() -> bool:
    return _tracer is not None


def setup(service: str, env: Mapping[str, str] | None = None) -> Callable[[], None]:
    """Starts tracing when the environment asks for it; returns what flushes and stops it
    (nothing to do when off)."""
    global _tracer, _getter
    env = os.environ if env is None else env
    if not wanted(env):
        return lambda: None

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}),
        sampler=_sampler(env),
        shutdown_on_exit=False,  # `shutdown` below does it, within a bound
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Read by the aiohttp instrumentation when it is set up, below.
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", QUIET_PATHS)
    AioHttpServerInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _publish_instrumentor().instrument()
    _getter = _headers_getter()
    _tracer = trace.get_tracer("gistsync")
    log.info("tracing on", extra={"otel_service_name": name})

    def shutdown() -> None:
        global _tracer
        # Bounded: with the collector gone, the exporter retries for its whole timeout
        # (10 s by default) on the way out. What is not sent by then is lost; the exit
        # is not held up.
        closing = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
        closing.start()
        closing.join(FLUSH_SECONDS)
        _tracer = None

    return shutdown


def _sampler(env: Mapping[str, str]) -> Sampler:
    """Every trace (or what `OTEL_TRACES_SAMPLER` says), but never one that would be a lone
    publish: messages sent outside any request, poll or handled message (a partition's
    ticks, every few seconds) would each make a trace of one span."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )
    from opentelemetry.trace import SpanKind, get_current_span

    if env.get("OTEL_TRACES_SAMPLER"):
        # The SDK reads the operator's choice itself when given no sampler.
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        inner: Sampler = _get_from_env_or_default()
    else:
        inner = ParentBased(ALWAYS_ON)

    class NoLonePublish(Sampler):
        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Attributes = None,
            links: Sequence[Link] | None = None,
            trace_state: TraceState | None = None,
        ) -> SamplingResult:
            parent = get_current_span(parent_context).get_span_context()
            if kind is SpanKind.PRODUCER and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            return inner.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"NoLonePublish{{{inner.get_description()}}}"

    return NoLonePublish()


def _publish_instrumentor() -> Any:
    """The maintained aio-pika instrumentation, for publishing only (see the module doc)."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor

    class PublishOnly(AioPikaInstrumentor):
        def _instrument(self, **kwargs: Any) -> None:
            scope = "opentelemetry.instrumentation.aio_pika"
            self._instrument_exchange(trace.get_tracer(scope, None, kwargs.get("tracer_provider")))

        def _uninstrument(self, **kwargs: Any) -> None:
            self._uninstrument_exchange()  # type: ignore[no-untyped-call]

    return PublishOnly()


def ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the span under way, for log lines (none when off)."""
    if _tracer is None:
        return {}
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _headers_getter() -> Any:
    """Reads the trace context from AMQP headers (a value may arrive as bytes)."""
    from opentelemetry.propagators.textmap import Getter

    class Headers(Getter[Mapping[str, Any]]):
        def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
            value = carrier.get(key)
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace")
            return [value] if isinstance(value, str) else None

        def keys(self, carrier: Mapping[str, Any]) -> list[str]:
            return [str(key) for key in carrier]

    return Headers()


@contextmanager
def consuming(
    name: str, headers: Mapping[str, Any] | None, attributes: Mapping[str, str]
) -> Iterator[None]:
    """A CONSUMER span for the block, child of the span whose context `headers` carry."""
    if _tracer is None:
        yield
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(headers or {}, getter=_getter)
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=dict(attributes)
    ):
        yield


@contextmanager
def work(name: str, **fields: str) -> Iterator[None]:
    """A unit of the service's own work (not a request, not a message: a poll): its log
    fields for the block and, when tracing is on, a span that starts a trace of its own
    (what the work publishes belongs to it, not to whatever woke it)."""
    with bound(**fields):
        if _tracer is None:
            yield
            return
        from opentelemetry.context import Context

        attributes = {f"gistsync.{key}": value for key, value in fields.items()}
        with _tracer.start_as_current_span(name, context=Context(), attributes=attributes):
            yield
