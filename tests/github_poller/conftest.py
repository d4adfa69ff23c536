"""Fixtures of the poller's tests: the GitHub simulator in-process, and clients that record
every exchange (real HTTP) so that tests can check headers, pacing and the contract."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from gistsync.broker import Broker, Retry
from gistsync.contracts import (
    AnyMessage,
    GistDiscovered,
    Message,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    login_key,
)
from gistsync.transport.topology import partition_of
from github_poller.github import GitHubClient
from github_poller.settings import Settings
from sandbox.testing import Sandbox, run_sandbox
from tests.conftest import PARTITIONS, BrokerFactory, free_port
from tests.github_poller import contract

TOKEN = "ghp_pollerTestToken0123456789abcdefABCDEF"


@dataclass(frozen=True)
class Exchange:
    sent_at: float  # time.monotonic()
    received_at: float
    request: httpx.Request
    response: httpx.Response


class Recorder(httpx.AsyncBaseTransport):
    """A real HTTP transport that keeps every request and answer (bodies read)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent_at = time.monotonic()
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append(Exchange(sent_at, time.monotonic(), request, response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def statuses(self) -> list[int]:
        return [exchange.response.status_code for exchange in self.exchanges]

    def check_contract(self) -> None:
        checked: set[tuple[object, ...]] = set()
        for exchange in self.exchanges:
            request, response = exchange.request, exchange.response
            # Everything the description constrains; repeats (the 304s of a steady state)
            # would validate the same way.
            key = (
                request.method,
                str(request.url),
                tuple(request.headers.multi_items()),
                response.status_code,
                response.headers.get("content-type"),
                response.headers.get("link"),
                response.content,
            )
            if key not in checked:
                contract.check(response)
                checked.add(key)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox(github_token=TOKEN) as sb:
        yield sb


ClientFactory = Callable[..., tuple[GitHubClient, Recorder]]


@pytest.fixture
async def clients(sandbox: Sandbox) -> AsyncIterator[ClientFactory]:
    """Makes clients of the simulator; every exchange they had is checked against the
    contract at the end of the test."""
    made: list[tuple[GitHubClient, Recorder]] = []

    def make(base_url: str | None = None, **kwargs: object) -> tuple[GitHubClient, Recorder]:
        recorder = Recorder()
        options: dict[str, object] = {"timeout": 5.0, "requests_per_second": 1000.0}
        options.update(kwargs)
        client = GitHubClient(
            base_url or sandbox.github_url,
            TOKEN,
            transport=recorder,
            **options,  # type: ignore[arg-type]
        )
        made.append((client, recorder))
        return client, recorder

    yield make
    for client, recorder in made:
        await client.aclose()
        recorder.check_contract()


OUTCOMES = ("ok", "retried", "dead_lettered", "error_reply", "unacked")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def handled(queue: str) -> float:
    """Messages of `queue` (a shared queue, or a service's partitions) handled in this process."""
    return sum(metric("gistsync_messages_consumed_total", queue=queue, outcome=o) for o in OUTCOMES)


def events_published() -> float:
    return sum(
        metric("gistsync_messages_published_total", type=kind)
        for kind in ("event.gist_discovered", "event.gist_deleted")
    )


@dataclass
class Settled:
    """From now on: has every gist event confirmed by the broker been handled by the writer's
    stand-in? (Nothing more can then arrive unseen: what a test may assert on.)"""

    published: float = field(default_factory=events_published)
    events: float = field(default_factory=lambda: handled("pipedrive_writer"))

    def __call__(self) -> bool:
        more = events_published() - self.published
        return handled("pipedrive_writer") - self.events >= more


@dataclass
class FakeWriter:
    """Stands in for pipedrive_writer on its two queues: answers `TrackedUsersQuery` with
    `users` (of the partition asked for) and keeps the `gist.discovered` events."""

    users: list[str]
    queries: int = 0
    asked: list[int | None] = field(default_factory=list)  # the partition of each query
    events: list[GistDiscovered] = field(default_factory=list)

    async def on_query(self, message: AnyMessage) -> Message | None:
        assert isinstance(message, TrackedUsersQuery)
        self.queries += 1
        self.asked.append(message.partition)
        wanted = message.partition
        share = [
            login
            for login in self.users
            if wanted is None or partition_of(login_key(login), PARTITIONS) == wanted
        ]
        return TrackedUsersReply(users=tuple(TrackedUser(login=u, unseen=0) for u in share))

    async def on_event(self, message: AnyMessage) -> Message | None:
        if isinstance(message, GistDiscovered):
            self.events.append(message)
        return None


@dataclass
class World:
    """The simulator, RabbitMQ on the test's prefix, and a fake writer to start at will."""

    sandbox: Sandbox
    amqp_url: str
    prefix: str
    brokers: BrokerFactory
    writer: FakeWriter = field(default_factory=lambda: FakeWriter([]))

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_token_github": SecretStr(TOKEN),
            "github_api_url": self.sandbox.github_url,
            "amqp_url": SecretStr(self.amqp_url),
            "amqp_prefix": self.prefix,
            "partitions": PARTITIONS,
            "github_poller_host": "127.0.0.1",
            "github_poller_port": free_port(),
            "poll_interval_seconds": 3600.0,
            "github_requests_per_second": 200.0,
            "request_timeout_seconds": 2.0,
            "retry_base_seconds": 0.1,
            "retry_max_seconds": 0.2,
        }
        values.update(overrides)
        return Settings(**values)

    async def start_writer(self) -> None:
        broker = self.brokers("pipedrive_writer")
        await broker.connect()
        await broker.consume("pipedrive_writer.queries", self.writer.on_query, retry=None)
        await broker.consume_partitions(
            "pipedrive_writer", self.writer.on_event, retry=Retry(3, 0.01, 0.02)
        )

    async def gateway(self) -> Broker:
        broker = self.brokers("gateway")
        await broker.connect()
        return broker


@pytest.fixture
def world(sandbox: Sandbox, amqp_url: str, prefix: str, brokers: BrokerFactory) -> World:
    return World(sandbox, amqp_url, prefix, brokers)


async def status(url: str) -> int:
    """The HTTP status of a GET, 0 when nothing answers."""
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(url)).status_code
    except httpx.TransportError:
        return 0
