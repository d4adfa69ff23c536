"""The transport bound to gistsync's messages and routes: what the services construct.

`gistsync.transport` does the work (see its package doc); this module only passes it the
contracts' codec and the routing table, and types its answers as contracts' messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from gistsync.contracts import AnyMessage, Message
from gistsync.retry import Retry
from gistsync.routing import BROADCAST_TYPES, CODEC, PARTITIONED, ROUTES, TABLE
from gistsync.settings import CommonSettings
from gistsync.transport import topology
from gistsync.transport.bus import Transport
from gistsync.transport.codec import Envelope
from gistsync.transport.connection import Connection
from gistsync.transport.topology import Table, is_query_queue

__all__ = [
    "BROADCAST_TYPES",
    "PARTITIONED",
    "ROUTES",
    "Broker",
    "Handler",
    "Retry",
    "Topology",
    "is_query_queue",
]

Handler = Callable[[AnyMessage], Awaitable[Message | None]]


@dataclass(frozen=True)
class Topology(topology.Topology):
    """gistsync's queues and exchanges under a prefix."""

    table: Table = field(default_factory=lambda: TABLE)


class Broker(Transport):
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        service: str,
        publish_timeout: float = 5.0,
        prefetch: int = 16,
        partitions: int = 1,
    ) -> None:
        names = Topology(prefix, partitions)
        connection = Connection(
            url, names, name=service, publish_timeout=publish_timeout, prefetch=prefetch
        )
        super().__init__(connection, CODEC)

    @classmethod
    def from_settings(cls, settings: CommonSettings, service: str) -> Broker:
        return cls(
            settings.amqp_url.get_secret_value(),
            prefix=settings.amqp_prefix,
            service=service,
            publish_timeout=settings.publish_timeout_seconds,
            prefetch=settings.prefetch,
            partitions=settings.partitions,
        )

    async def request(self, message: Envelope, *, timeout: float) -> AnyMessage:
        """Send a query (or a command that answers) and wait for its reply.

        Raises `RequestTimeout` when nobody answers in time and `RemoteError` when the
        answer is an `ErrorReply`."""
        return cast("AnyMessage", await super().request(message, timeout=timeout))
