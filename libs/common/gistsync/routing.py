"""The application's side of the transport: which message goes to which queue, and how
messages are encoded, keyed and answered (`gistsync.transport` knows none of it).

Per-user work is partitioned by the user's login key, so each user's messages are handled
by one replica at a time, in order; questions any replica can answer go to shared queues.
"""

from __future__ import annotations

from gistsync.contracts import ErrorReply, Message, encode, login_key, parse_message
from gistsync.transport.codec import Envelope
from gistsync.transport.topology import Table

# Per-user work: each service's partition queues and the message types they receive.
PARTITIONED: dict[str, tuple[str, ...]] = {
    "pipedrive_writer": (
        "command.track_user",
        "command.untrack_user",
        "command.mark_seen",
        "event.gist_discovered",
        "event.gist_deleted",
        "query.gists",
        "query.user_status",
    ),
    "github_poller": (
        "event.user_tracked",
        "event.user_untracked",
        "command.poll_now",
        "query.poll_status",
    ),
}
# Shared queues (after the prefix) → the message types routed to them: any replica answers.
ROUTES: dict[str, tuple[str, ...]] = {
    "pipedrive_writer.queries": ("query.tracked_users",),
    "github_poller.queries": ("query.user_exists", "command.poll_now"),
}
# Not consumed from a durable queue: every writer keeps its list of users current with them,
# through a queue of its own (`consume_broadcast`).
BROADCAST_TYPES = frozenset({"event.unseen_changed"})

TABLE = Table(partitioned=PARTITIONED, shared=ROUTES, broadcast=BROADCAST_TYPES)


def _message(envelope: Envelope) -> Message:
    assert isinstance(envelope, Message), f"not a gistsync message: {envelope!r}"
    return envelope


class ContractCodec:
    """`gistsync.transport.codec.Codec` for the messages of `gistsync.contracts`."""

    def encode(self, message: Envelope) -> bytes:
        return encode(_message(message))

    def decode(self, body: bytes) -> Envelope:
        return parse_message(body)

    def key(self, message: Envelope) -> str | None:
        login = getattr(message, "login", None)
        return login_key(login) if isinstance(login, str) else None

    def partition(self, message: Envelope) -> int | None:
        partition = getattr(message, "partition", None)
        return partition if isinstance(partition, int) else None

    def answer(self, reply: Envelope, request: Envelope) -> Envelope:
        return _message(reply).model_copy(update={"correlation_id": request.correlation_id})

    def error(self, code: str, detail: str, request: Envelope | None) -> Envelope:
        correlation = request.correlation_id if request is not None else "unknown"
        return ErrorReply(code=code, detail=detail, correlation_id=correlation)

    def failure(self, reply: Envelope) -> tuple[str, str] | None:
        return (reply.code, reply.detail) if isinstance(reply, ErrorReply) else None


CODEC = ContractCodec()
