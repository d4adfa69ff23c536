"""The gateway in-process on a real broker, with stand-ins for the poller and the writer
that answer over RabbitMQ like the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gistsync.broker import Broker, Retry
from gistsync.contracts import AnyMessage, Message
from gistsync.settings import GatewaySettings
from tests.conftest import BrokerFactory

Answer = Callable[[AnyMessage], Message | None]


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
    await broker.consume("pipedrive_writer", peers.handle, retry=fast)
    return peers


@pytest.fixture
async def gateway(
    amqp_url: str, prefix: str, brokers: BrokerFactory
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    settings = GatewaySettings(
        amqp_url=amqp_url,
        amqp_prefix=prefix,
        request_timeout_seconds=1.0,
        fetch_timeout_seconds=1.0,
    )
    broker: Broker = brokers("gateway")
    await broker.connect()
    async with TestClient(TestServer(create_app(settings, broker))) as client:
        yield client
