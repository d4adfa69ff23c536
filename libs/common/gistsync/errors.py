"""One exception hierarchy for the whole suite.

A consumer decides what to do with a failed message by its class alone: a `PermanentError`
goes to the dead-letter queue at once, anything else is retried with backoff.
"""


class GistsyncError(Exception):
    """Base of every error gistsync raises on purpose."""


class PermanentError(GistsyncError):
    """Retrying cannot help (bad input, a 4xx from upstream): dead-letter it."""


class TransientError(GistsyncError):
    """May succeed later (timeouts, 5xx, 429, a lost connection): retry it."""


class PublishError(TransientError):
    """The broker did not confirm a publish in time, or could not route it."""


class RequestTimeout(TransientError):
    """Nobody answered a request in time."""


class InvalidMessage(PermanentError, ValueError):
    """A body that is not a valid message; `reason` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteError(GistsyncError):
    """The service that answered a request reported a failure."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
