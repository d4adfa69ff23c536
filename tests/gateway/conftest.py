"""Two ways to run the gateway in-process:

- `gateway` / `start_gateway`: over `FakeServices` (`peers`), in memory. No broker: the HTTP
  edge itself (bodies, problems, security, pages, the predecessor's endpoints, OpenAPI,
  limits, fuzzing) in the fast tier.
- `broker_gateway` / `start_broker_gateway`: over the real `BrokerServices` on a real
  RabbitMQ, with `broker_peers` answering as the poller and the writer would. For what only
  the real path proves: coalescing, timeouts, remote failures, partitions.

Tests are marked by what they need (tests/conftest.py: `broker` from the fixtures they use),
so the in-memory ones are the fast tier (`slow`: the few that take seconds each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from gateway.app import create_app
from gateway.bus import BrokerServices
from gateway.limits import RateLimiter
from gateway.server import GatewayRunner
from gateway.services import Services
from gateway.settings import Settings
from gistsync.broker import Broker
from gistsync.contracts import AnyMessage, Message
from gistsync.retry import Retry
from tests.conftest import PARTITIONS, BrokerFactory
from tests.gateway.fakes import FakeServices

Answer = Callable[[AnyMessage], Message | None]
Client = TestClient[web.Request, web.Application]
StartGateway = Callable[..., Awaitable[Client]]
API_KEY = "test-api-key-0123456789"


class GatewayServer(TestServer):
    """The test server, with the connection handling `python -m gateway` has."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.settings = settings

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return GatewayRunner(self.app, self.settings, **kwargs)


def gateway_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "partitions": PARTITIONS,
        "request_timeout_seconds": 1.0,
        "fetch_timeout_seconds": 1.0,
        "gateway_api_key": None,  # whatever the environment says
        "gateway_ui_settle_seconds": 1.0,
        **overrides,
    }
    return Settings(**values)


class Gateways:
    """Starts gateways in-process and closes them all."""

    def __init__(self, services: Callable[[Settings], Awaitable[Services]], **base: Any):
        self.services = services
        self.base = base
        self.clients: list[Client] = []

    async def start(
        self,
        *,
        limiter: RateLimiter | None = None,
        auth_failures: RateLimiter | None = None,
        **overrides: Any,
    ) -> Client:
        settings = gateway_settings(**{**self.base, **overrides})
        services = await self.services(settings)
        app = create_app(settings, services, limiter=limiter, auth_failures=auth_failures)
        client: Client = TestClient(GatewayServer(app, settings))
        await client.start_server()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


# --- in memory ----------------------------------------------------------------------------


@pytest.fixture
def peers() -> FakeServices:
    return FakeServices()


@pytest.fixture
async def start_gateway(peers: FakeServices) -> AsyncIterator[StartGateway]:
    """Starts a gateway over `peers` with these settings (and optionally limiters with a
    fake clock)."""

    async def fake(_: Settings) -> Services:
        return peers

    gateways = Gateways(fake)
    yield gateways.start
    await gateways.close()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Client:
    return await start_gateway()


# --- on the broker ------------------------------------------------------------------------


@dataclass
class Peers:
    """Answers queries over RabbitMQ as the poller and writer would, and records what
    reaches them."""

    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[AnyMessage] = field(default_factory=list)

    async def handle(self, message: AnyMessage) -> Message | None:
        self.received.append(message)
        answer = self.answers.get(message.type)
        return answer(message) if answer else None

    def of_type(self, kind: str) -> list[AnyMessage]:
        return [m for m in self.received if m.type == kind]


@pytest.fixture
async def broker_peers(brokers: BrokerFactory) -> Peers:
    peers = Peers()
    broker = brokers("peers")
    await broker.connect()
    fast = Retry(max_attempts=1)
    await broker.consume("github_poller.queries", peers.handle, retry=None)
    await broker.consume("pipedrive_writer.queries", peers.handle, retry=None)
    await broker.consume_partitions("pipedrive_writer", peers.handle, retry=fast)
    await broker.consume_partitions("github_poller", peers.handle, retry=fast)
    return peers


@pytest.fixture
async def start_broker_gateway(
    amqp_url: str, prefix: str, brokers: BrokerFactory
) -> AsyncIterator[StartGateway]:
    """Starts a gateway over the real `BrokerServices`, on the test's broker prefix."""

    async def real(settings: Settings) -> Services:
        broker: Broker = brokers("gateway", publish_timeout=settings.publish_timeout_seconds)
        await broker.connect()
        return BrokerServices(broker, settings)

    gateways = Gateways(real, amqp_url=amqp_url, amqp_prefix=prefix)
    yield gateways.start
    await gateways.close()


@pytest.fixture
async def broker_gateway(start_broker_gateway: StartGateway) -> Client:
    return await start_broker_gateway()
