"""What a log line is about: the request or message being handled (its correlation id, its
message id, the user), set once where the work starts and found by every line written while
it runs, in that task and in the tasks it starts (asyncio copies context variables into them).

`bound(...)` is the only way in: fields are added for the block and restored after it, so a
unit of work never leaks its fields into the next one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})
_current: ContextVar[Mapping[str, str]] = ContextVar("gistsync_log_context", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields of the work under way (empty outside any)."""
    return _current.get()


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Adds `fields` (those not None) to every log line written inside the block."""
    given = {name: value for name, value in fields.items() if value is not None}
    token = _current.set(MappingProxyType({**_current.get(), **given}))
    try:
        yield
    finally:
        _current.reset(token)
