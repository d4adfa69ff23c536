"""What the transport needs to know of messages, and nothing more: the application's
`Codec` turns them into bytes and back, says which key a message belongs to, and makes
the error reply a failed request is answered with."""

from __future__ import annotations

from typing import Protocol


class Envelope(Protocol):
    """Any message: the transport reads these three and passes the rest through."""

    @property
    def type(self) -> str: ...

    @property
    def message_id(self) -> str: ...

    @property
    def correlation_id(self) -> str: ...


class Codec(Protocol):
    def encode(self, message: Envelope) -> bytes: ...

    def decode(self, body: bytes) -> Envelope:
        """The message, or `gistsync.errors.InvalidMessage` saying why not."""
        ...

    def key(self, message: Envelope) -> str | None:
        """The key whose messages are routed to one partition and handled in order."""
        ...

    def partition(self, message: Envelope) -> int | None:
        """A partition the message names itself (work of a whole partition), or None."""
        ...

    def answer(self, reply: Envelope, request: Envelope) -> Envelope:
        """`reply`, carrying the request's correlation id."""
        ...

    def error(self, code: str, detail: str, request: Envelope | None) -> Envelope:
        """The reply to a request that could not be done."""
        ...

    def failure(self, reply: Envelope) -> tuple[str, str] | None:
        """(code, detail) when `reply` is an error reply, else None."""
        ...
