"""Page sessions that can be ended before they expire.

A session is a signed cookie holding a random id and an expiry, so any gateway that shares
the secret can check it without asking anyone. Signing out revokes the id:

- in this process at once, until the session would have expired anyway;
- in every other gateway running at that moment, through a fanout exchange on the broker
  (one queue per gateway process, gone with it);
- not in a gateway started after the sign-out: it never heard of it, so a copy of the cookie
  taken before the sign-out works there until it expires (GATEWAY_SESSION_MAX_AGE_SECONDS).
  Changing GATEWAY_SESSION_SECRET ends every session everywhere.

Only a digest of the id travels or is kept: the id itself is as good as the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from aiohttp import web

from gistsync.broker import Broker

log = logging.getLogger(__name__)
_DIGEST = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Session:
    id: str
    expires: int

    @property
    def digest(self) -> str:
        return digest(self.id)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


class Revocations:
    """Ended sessions, by digest, each kept until it would have expired. Bounded: past
    `max_entries` the ones expiring soonest are forgotten first."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, max_entries: int = 100_000
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._until: dict[str, float] = {}

    def add(self, session_digest: str, expires: float) -> None:
        if expires <= self.clock():
            return
        self._until[session_digest] = max(expires, self._until.get(session_digest, 0.0))
        if len(self._until) > self.max_entries:
            self._prune()

    def __contains__(self, session_digest: object) -> bool:
        until = self._until.get(session_digest) if isinstance(session_digest, str) else None
        return until is not None and until > self.clock()

    def __len__(self) -> int:
        return len(self._until)

    def _prune(self) -> None:
        now = self.clock()
        live = sorted(((u, d) for d, u in self._until.items() if u > now), reverse=True)
        self._until = {d: u for u, d in live[: self.max_entries]}


class SignOuts(Protocol):
    """Revokes a session here and tells every other running gateway."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def announce(self, session: Session) -> None: ...


class RevocationBus:
    """`SignOuts` through a fanout exchange on the broker."""

    def __init__(self, broker: Broker, revocations: Revocations, publish_timeout: float) -> None:
        self.broker = broker
        self.revocations = revocations
        self.publish_timeout = publish_timeout
        self.exchange_name = f"{broker.topology.prefix}.gateway.sessions"
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def start(self) -> None:
        channel = await self.broker.open_channel()
        # Auto-deleted with the last gateway's queue: nothing is left behind.
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.FANOUT, durable=False, auto_delete=True
        )
        name = f"{self.exchange_name}.{uuid.uuid4().hex[:12]}"
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(exchange)
        await self.broker.start_consuming(queue, self._hear)
        self._channel, self._exchange = channel, exchange

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = self._exchange = None

    async def announce(self, session: Session) -> None:
        """Revoke here, then tell the others; a broker that does not confirm in time costs
        only the others' knowing (logged), never the sign-out itself."""
        self.revocations.add(session.digest, session.expires)
        if self._exchange is None:
            return
        body = json.dumps({"session": session.digest, "expires": session.expires}).encode()
        try:
            async with asyncio.timeout(self.publish_timeout):
                await self._exchange.publish(aio_pika.Message(body), routing_key="")
        except Exception as exc:  # the broker's failures are many; the sign-out holds here
            log.warning("sign-out not announced to other gateways", extra={"error": repr(exc)})

    async def _hear(self, incoming: AbstractIncomingMessage) -> None:
        async with incoming.process(ignore_processed=True):
            try:
                data = json.loads(incoming.body)
                session_digest, expires = data["session"], data["expires"]
                if not (isinstance(session_digest, str) and _DIGEST.fullmatch(session_digest)):
                    raise ValueError("not a session digest")
                if not isinstance(expires, int):
                    raise ValueError("not an expiry")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignored a malformed sign-out", extra={"error": str(exc)})
                return
            self.revocations.add(session_digest, expires)


REVOCATIONS: web.AppKey[SignOuts] = web.AppKey("revocations")
