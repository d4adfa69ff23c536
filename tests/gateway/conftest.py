"""The gateway in-process on a real broker, with stand-ins for the poller and the writer
that answer over RabbitMQ like the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from gateway.app import create_app
from gateway.limits import RateLimiter
from gateway.server import GatewayRunner
from gateway.settings import Settings
from gistsync.broker import Broker, Retry
from gistsync.contracts import AnyMessage, Message
from tests.conftest import PARTITIONS, BrokerFactory

Answer = Callable[[AnyMessage], Message | None]
Client = TestClient[web.Request, web.Application]
StartGateway = Callable[..., Awaitable[Client]]
API_KEY = "test-api-key-0123456789"


@dataclass
class Peers:
    """Answers queries as the poller and writer would, and records what reaches them."""

    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[AnyMessage] = field(default_factory=list)

    async def handle(self, message: AnyMessage) -> Message | None:
        self.received.append(message)
        answer = self.answers.get(message.type)
        return answer(message) if answer else None

    def of_type(self, kind: str) -> list[AnyMessage]:
        return [m for m in self.received if m.type == kind]


@pytest.fixture
async def peers(brokers: BrokerFactory) -> Peers:
    peers = Peers()
    broker = brokers("peers")
    await broker.connect()
    fast = Retry(max_attempts=1)
    await broker.consume("github_poller.queries", peers.handle, retry=None)
    await broker.consume("pipedrive_writer.queries", peers.handle, retry=None)
    await broker.consume_partitions("pipedrive_writer", peers.handle, retry=fast)
    await broker.consume_partitions("github_poller", peers.handle, retry=fast)
    return peers


def gateway_settings(amqp_url: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "amqp_prefix": prefix,
        "partitions": PARTITIONS,
        "request_timeout_seconds": 1.0,
        "fetch_timeout_seconds": 1.0,
        "gateway_api_key": None,  # whatever the environment says
        "gateway_ui_settle_seconds": 1.0,
        **overrides,
    }
    return Settings(**values)


class GatewayServer(TestServer):
    """The test server, with the connection handling `python -m gateway` has."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.settings = settings

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return GatewayRunner(self.app, self.settings, **kwargs)


@pytest.fixture
async def start_gateway(
    amqp_url: str, prefix: str, brokers: BrokerFactory
) -> AsyncIterator[StartGateway]:
    """Starts a gateway with these settings (and optionally limiters with a fake clock)."""
    clients: list[Client] = []

    async def start(
        *,
        limiter: RateLimiter | None = None,
        auth_failures: RateLimiter | None = None,
        **overrides: Any,
    ) -> Client:
        settings = gateway_settings(amqp_url, prefix, **overrides)
        broker: Broker = brokers("gateway", publish_timeout=settings.publish_timeout_seconds)
        await broker.connect()
        app = create_app(settings, broker, limiter=limiter, auth_failures=auth_failures)
        client: Client = TestClient(GatewayServer(app, settings))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Client:
    return await start_gateway()
