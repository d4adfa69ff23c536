"""Tracing end to end: the suite as real processes exports its spans over OTLP/HTTP to a
receiver in this test, and one tracked user's work forms the traces an operator expects.

- Adding a user (`POST /api/users`) is one trace: the gateway's request, its questions to
  the writer and the poller (the poller asks GitHub), the command to the writer, which
  creates the person and the deal in Pipedrive, and the event the poller hears from it.
- A poll starts a trace of its own (it belongs to the schedule, not to whoever added the
  user): the poll, its GitHub read, and each gist it publishes, which the writer turns into
  `POST /activities`.

Every message hop is a producer span in the sender and a consumer span, its child, in the
receiver. The log lines of the same work carry the request's correlation id and the trace id.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from sandbox.launch import SANDBOX_GITHUB_TOKEN, SANDBOX_PIPEDRIVE_TOKEN, Suite
from tests.suite import new_prefix, running, suite_env
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

API_KEY = "e2e-tracing-key-0123456789"
KIND = {
    SpanProto.SPAN_KIND_INTERNAL: "internal",
    SpanProto.SPAN_KIND_SERVER: "server",
    SpanProto.SPAN_KIND_CLIENT: "client",
    SpanProto.SPAN_KIND_PRODUCER: "producer",
    SpanProto.SPAN_KIND_CONSUMER: "consumer",
}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]

    @property
    def url(self) -> str:
        return self.attributes.get("url.full") or self.attributes.get("http.url") or ""

    @property
    def message_id(self) -> str:
        return self.attributes.get("messaging.message.id", "")

    def show(self) -> str:
        where = f" {urlsplit(self.url).path}" if self.kind == "client" else ""
        return f"{self.service} / {self.kind} / {self.name}{where}"


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


class Receiver:
    """An OTLP/HTTP trace receiver (protobuf, `POST /v1/traces`) keeping every span."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=KIND.get(span.kind, "unspecified"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def find(self, **wanted: str) -> list[Span]:
        with self.lock:
            spans = list(self.spans)
        return [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def traced(
    amqp_url: str, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Suite]:
    env = suite_env(
        amqp_url,
        new_prefix("e2e-tracing"),
        PARTITIONS="2",
        POLL_INTERVAL_SECONDS="1",
        LOG_LEVEL="DEBUG",
        GATEWAY_API_KEY=API_KEY,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans reach the receiver soon after they end
    )
    with running(env, Path(tmp_path_factory.mktemp("logs"))) as suite:
        yield suite


@dataclass(frozen=True)
class Added:
    login: str
    gist_id: str
    request_id: str


@pytest.fixture(scope="module")
def added(traced: Suite) -> Added:
    """A user with one gist on GitHub, added through the API, until its activity exists."""
    login = f"Traced-{uuid.uuid4().hex[:6]}"
    created = httpx.post(
        f"{traced.url('github')}/_sandbox/users/{login}/gists",
        json={"description": "traced gist", "files": {"a.md": {"content": "# a"}}},
    )
    assert created.status_code == 201, created.text
    gist_id: str = created.json()["id"]
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    response = httpx.post(
        traced.url("gateway") + "/api/users",
        json={"login": login},
        headers={"X-API-Key": API_KEY, "X-Request-Id": request_id},
    )
    assert response.status_code == 202, response.text

    def activity() -> bool:
        state = httpx.get(traced.url("pipedrive") + "/_sandbox/state").json()
        return any(gist_id in (a.get("note") or "") for a in state["activities"])

    wait_for(activity, timeout=30, what="the gist's activity")
    return Added(login, gist_id, request_id)


def one(spans: list[Span], what: str) -> Span:
    assert len(spans) == 1, f"{what}: {[s.show() for s in spans]}"
    return spans[0]


def child(trace: list[Span], parent: Span, kind: str, service: str, what: str) -> list[Span]:
    found = [
        s
        for s in trace
        if s.parent_id == parent.span_id and s.kind == kind and s.service == service
    ]
    assert found, f"no {what} under {parent.show()}: {tree(trace)}"
    return found


def delivered(trace: list[Span], producer: Span, service: str, kind: str) -> Span:
    """The consumer span in `service` handling the message `producer` published."""
    assert producer.kind == "producer" and producer.message_id
    consumers = [s for s in trace if s.parent_id == producer.span_id and s.kind == "consumer"]
    consumer = one(consumers, f"consumer of {producer.name}")
    assert (consumer.service, consumer.name) == (service, f"{kind} process"), consumer.show()
    assert consumer.message_id == producer.message_id
    return consumer


def published(trace: list[Span], parent: Span, kind: str) -> list[Span]:
    """The producer spans of messages of `kind` published under `parent`."""
    return [
        s
        for s in trace
        if s.kind == "producer"
        and s.parent_id == parent.span_id
        and kind in s.attributes.get("messaging.destination", s.name)
    ]


def tree(trace: list[Span]) -> str:
    """The trace as an indented tree, for failures and for the record."""
    by_parent: dict[str, list[Span]] = {}
    for span in trace:
        by_parent.setdefault(span.parent_id, []).append(span)
    ids = {s.span_id for s in trace}
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        lines.append("  " * depth + span.show())
        for below in by_parent.get(span.span_id, []):
            walk(below, depth + 1)

    for root in [s for s in trace if s.parent_id not in ids]:
        walk(root, 0)
    return "\n" + "\n".join(lines)


def settled(receiver: Receiver, trace_id: str, enough: int) -> list[Span]:
    """The trace once it stopped growing and has at least `enough` spans."""
    sizes: list[int] = []

    def stable() -> list[Span] | None:
        trace = receiver.trace(trace_id)
        sizes.append(len(trace))
        return trace if len(trace) >= enough and sizes[-3:] == [len(trace)] * 3 else None

    result: list[Span] = wait_for(stable, timeout=20, what=f"trace {trace_id} complete")
    return result


def test_adding_a_user_is_one_trace_from_the_request_to_pipedrive(
    traced: Suite, receiver: Receiver, added: Added
) -> None:
    server = one(
        wait_for(
            lambda: receiver.find(service="gateway", kind="server", name="POST /api/users"),
            timeout=20,
            what="the gateway's span",
        ),
        "POST /api/users",
    )
    assert server.parent_id == ""
    trace = settled(receiver, server.trace_id, enough=10)
    print(tree(trace))

    # The gateway asks the poller whether the user exists; the poller asks GitHub.
    [asked] = published(trace, server, "query.user_exists")
    exists = delivered(trace, asked, "github_poller", "query.user_exists")
    github = child(trace, exists, "client", "github_poller", "GitHub call")
    assert any(s.url.endswith(f"/users/{added.login}") for s in github), tree(trace)

    # The command reaches the writer, which creates the person and the deal.
    [command] = published(trace, server, "command.track_user")
    handling = delivered(trace, command, "pipedrive_writer", "command.track_user")
    calls = child(trace, handling, "client", "pipedrive_writer", "Pipedrive call")
    posts = {s.url.rsplit("/", 1)[-1] for s in calls if s.name.startswith("POST")}
    assert {"persons", "deals"} <= posts, tree(trace)

    # The writer's event reaches the poller, which starts polling the user.
    [event] = published(trace, handling, "event.user_tracked")
    delivered(trace, event, "github_poller", "event.user_tracked")

    # The poll is not part of this trace.
    assert not [s for s in trace if s.kind == "internal" and s.name == "poll"], tree(trace)
    assert {s.service for s in trace} == {"gateway", "github_poller", "pipedrive_writer"}

    # No secret leaves in a span: the key and the tokens travel in headers, never recorded.
    secrets = (API_KEY, SANDBOX_GITHUB_TOKEN, SANDBOX_PIPEDRIVE_TOKEN)
    everything = [v for s in receiver.find() for v in (s.name, *s.attributes.values())]
    assert not [v for v in everything if any(secret in v for secret in secrets)]

    # The log lines of this work carry the request's id and this trace's id.
    gateway_lines = lines_of(traced, "gateway", added.request_id)
    [access] = [e for e in gateway_lines if e.get("access")]
    assert (access["route"], access["status"], access["credential"]) == (
        "/api/users",
        202,
        "key",
    )
    assert access["trace_id"] == server.trace_id
    writer_lines = lines_of(traced, "pipedrive_writer", added.request_id)
    [tracked] = [e for e in writer_lines if e["message"] == "user tracked"]
    assert tracked["trace_id"] == server.trace_id
    assert tracked["span_id"] == handling.span_id
    assert tracked["message_id"] == command.message_id
    assert tracked["login"] == added.login
    print(json.dumps(access))
    print(json.dumps(tracked))


def test_a_poll_starts_its_own_trace_down_to_the_activity(receiver: Receiver, added: Added) -> None:
    def the_poll_that_published() -> Span | None:
        for poll in receiver.find(service="github_poller", kind="internal", name="poll"):
            if poll.attributes.get("gistsync.login") != added.login:
                continue
            trace = receiver.trace(poll.trace_id)
            if published(trace, poll, "event.gist_discovered"):
                return poll
        return None

    poll = wait_for(
        the_poll_that_published,
        timeout=20,
        what="the poll's span (Poller.poll runs in gistsync.tracing.work) that found the gist",
    )
    assert poll.parent_id == ""
    trace = settled(receiver, poll.trace_id, enough=5)
    print(tree(trace))

    github = child(trace, poll, "client", "github_poller", "GitHub call")
    assert any(f"/users/{added.login}/gists" in s.url for s in github), tree(trace)
    [event] = published(trace, poll, "event.gist_discovered")
    handling = delivered(trace, event, "pipedrive_writer", "event.gist_discovered")
    calls = child(trace, handling, "client", "pipedrive_writer", "Pipedrive call")
    assert any(s.name.startswith("POST") and s.url.endswith("/activities") for s in calls), tree(
        trace
    )
    # Nothing of the request that added the user is in the poll's trace.
    assert not [s for s in trace if s.service == "gateway"], tree(trace)


def lines_of(suite: Suite, name: str, correlation_id: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's log that carry `correlation_id`."""
    found = []
    for line in (suite.log_dir / f"{name}.log").read_text().splitlines():
        if correlation_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("correlation_id") == correlation_id:
                found.append(entry)
    assert found, f"no line of {name} carries {correlation_id}"
    return found
