"""Tracing: off unless the standard variables ask (and then nothing of the SDK is loaded);
lone publishes not sampled; on a real broker, a published message's consumer span is the
child of its producer span, through the partitions and the per-key tasks, and the handler's
log lines carry the trace."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind

from gistsync import tracing
from gistsync.broker import Broker, Retry
from gistsync.contracts import AnyMessage, Message, TrackUser
from gistsync.logs import JsonFormatter
from tests.conftest import BrokerFactory


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ],
)
def test_on_only_when_the_standard_variables_ask(env: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(env) is wanted


def test_off_loads_nothing_of_the_sdk_and_changes_no_line() -> None:
    script = (
        "import sys, logging\n"
        "from gistsync import tracing\n"
        "from gistsync.logs import JsonFormatter\n"
        "stop = tracing.setup('x', {})\n"
        "stop()\n"
        "with tracing.work('poll', login='octocat'):\n"
        "    with tracing.consuming('m process', {'traceparent': 'x'}, {}):\n"
        "        r = logging.makeLogRecord({'msg': 'hi'})\n"
        "        print(JsonFormatter('x').format(r))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')\n"
        "             or m.startswith('opentelemetry.instrumentation')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    line, modules = done.stdout.splitlines()
    entry = json.loads(line)
    assert entry["login"] == "octocat" and "trace_id" not in entry
    assert modules == "[]"


def test_a_publish_outside_any_work_is_not_sampled_the_rest_is() -> None:
    sampler = tracing._sampler({})
    tracer = TracerProvider(sampler=sampler).get_tracer("t")

    def decision(kind: SpanKind, under: bool) -> Decision:
        parent = trace.set_span_in_context(tracer.start_span("work")) if under else None
        result = sampler.should_sample(parent, 1, "x", kind)
        return result.decision

    assert decision(SpanKind.PRODUCER, under=False) is Decision.DROP
    assert decision(SpanKind.PRODUCER, under=True) is Decision.RECORD_AND_SAMPLE
    assert decision(SpanKind.INTERNAL, under=False) is Decision.RECORD_AND_SAMPLE
    assert decision(SpanKind.SERVER, under=False) is Decision.RECORD_AND_SAMPLE


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, into memory: the publish instrumentation and the
    delivery path's consumer spans, undone after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("gistsync"))
    monkeypatch.setattr(tracing, "_getter", tracing._headers_getter())
    publishing = tracing._publish_instrumentor()
    publishing.instrument(tracer_provider=provider)
    yield exporter
    publishing.uninstrument()
    provider.shutdown()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_the_consumer_span_is_the_child_of_the_producer_across_the_broker(
    brokers: BrokerFactory, spans: InMemorySpanExporter
) -> None:
    broker: Broker = brokers()
    await broker.connect()
    log = logging.getLogger("tests.tracing")
    lines = Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    done = asyncio.Event()

    async def handle(message: AnyMessage) -> Message | None:
        await asyncio.sleep(0.05)  # the span lasts as long as the handling
        log.info("handled")
        done.set()
        return None

    fast = Retry(max_attempts=2, base_seconds=0.01, max_seconds=0.02)
    await broker.consume_partitions("pipedrive_writer", handle, retry=fast)
    tracer = tracing._tracer  # the fixture's, into memory
    assert tracer is not None
    sent = TrackUser(login="octocat", correlation_id="req-9")
    try:
        with tracer.start_as_current_span("request"):
            await broker.publish(sent)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        log.removeHandler(lines)

    assert await await_consumer(spans)
    finished = list(spans.get_finished_spans())
    [request] = named(finished, "request")
    producers = [s for s in finished if s.kind is SpanKind.PRODUCER]
    [producer] = [s for s in producers if "command.track_user" in s.name]
    [consumer] = named(finished, "command.track_user process")
    assert producer.parent is not None and producer.parent.span_id == request.context.span_id
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.is_remote
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == request.context.trace_id
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.message.id"] == sent.message_id
    assert consumer.end_time is not None and consumer.start_time is not None
    assert consumer.end_time - consumer.start_time >= 50_000_000  # ns: the whole handling
    [line] = [json.loads(text) for text in lines.lines]
    assert line["trace_id"] == f"{request.context.trace_id:032x}"
    assert line["span_id"] == f"{consumer.context.span_id:016x}"
    assert line["correlation_id"] == "req-9"


async def await_consumer(exporter: InMemorySpanExporter) -> bool:
    """The consumer span ends just after the handler returns: wait for it."""
    for _ in range(100):
        if named(list(exporter.get_finished_spans()), "command.track_user process"):
            return True
        await asyncio.sleep(0.02)
    return False


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]
