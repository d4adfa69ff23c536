"""JSON logs, one object a line, with every known secret masked before it is written.

Each line also says what it is about: the fields of the work under way (`logcontext`: the
correlation id, the message id, the user) and, when tracing is on, the span's ids, so a line
leads to its trace and a trace to its lines. A field the line passes itself wins."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gistsync import tracing
from gistsync.logcontext import current

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
MASK = "***"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.service = service
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(current())
        entry.update(tracing.ids())
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Masked before encoding: once encoded, a secret with a quote, a backslash or a
        # non-ASCII character is spelled differently and would no longer be found.
        return json.dumps(self.masked(entry))

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def masked(self, value: Any, depth: int = 0) -> Any:
        """`value` as JSON will hold it, with every secret masked in every string (keys
        included); what JSON cannot hold is written as its `str`, masked too."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.mask(value)
        if depth < 20 and isinstance(value, dict):
            return {self.mask(str(k)): self.masked(v, depth + 1) for k, v in value.items()}
        if depth < 20 and isinstance(value, list | tuple | set | frozenset):
            return [self.masked(v, depth + 1) for v in value]
        if isinstance(value, bytes | bytearray):
            return self.mask(bytes(value).decode("utf-8", "replace"))
        return self.mask(str(value))


def configure_logging(service: str, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Their INFO lines repeat every request; ours say what matters.
    # urllib3: the trace exporter's requests, when tracing is on.
    for noisy in ("httpx", "httpcore", "aiormq", "aio_pika", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
