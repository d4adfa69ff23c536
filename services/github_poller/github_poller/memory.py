"""What the poller remembers of each user, in memory only, and how it shows it to operators."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gistsync.contracts import Gist, PollError, PollStatus


def fingerprint(gist: Gist) -> int:
    """What the writer shows of a gist, hashed: a change of it is an edit to publish."""
    return hash((gist.description, gist.files))


@dataclass
class PolledUser:
    """What the poller remembers of a user: GitHub's ETag of page 1, the fingerprint of each
    gist published, and the gists a read of several pages missed (deleted if missed again)."""

    login: str
    etag: str | None = None
    published: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    first_read_done: bool = False
    # What `Poller.status` shows, in wall-clock seconds.
    last_poll_at: float | None = None
    last_change_at: float | None = None
    last_error: tuple[float, str] | None = None
    failures: int = 0  # polls in a row that failed or were rate limited


def poll_status(user: PolledUser, interval: float, next_poll: float | None) -> PollStatus:
    """`query.poll_status`'s answer: `interval` the user's turn now, `next_poll` (epoch) when
    it comes, None while a poll runs."""
    error = user.last_error
    return PollStatus(
        last_poll_at=moment(user.last_poll_at),
        last_change_at=moment(user.last_change_at),
        last_error=None if error is None else PollError(at=at(error[0]), text=error[1]),
        failures=user.failures,
        interval_seconds=round(interval, 3),
        next_poll_at=moment(next_poll),
    )


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else at(epoch)
