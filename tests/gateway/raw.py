"""Raw HTTP/1.1 over a socket: the bytes curl or a fuzzer would send, which no HTTP client
library lets through (undecodable headers, broken bodies)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

Header = tuple[bytes | str, bytes | str]


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def build(
    method: bytes | str,
    target: bytes | str,
    headers: Sequence[Header] | None = None,
    body: bytes = b"",
    *,
    host: bytes | str | None = "127.0.0.1",
) -> bytes:
    """A request with `Connection: close`, a Host (unless None) and a Content-Length."""
    lines = [_b(method) + b" " + _b(target) + b" HTTP/1.1"]
    names = {_b(name).lower() for name, _ in headers or []}
    if host is not None and b"host" not in names:
        lines.append(b"Host: " + _b(host))
    lines += [_b(name) + b": " + _b(value) for name, value in headers or []]
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None

    @property
    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def exchange(port: int, request: bytes, timeout: float = 15.0) -> Answer:
    """Send `request`, read until the server closes: the first answer, parsed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        with_body = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            with_body += chunk
    head, _, body = with_body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        raise AssertionError(f"not an HTTP answer: {with_body[:200]!r}")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line]
    return Answer(status, headers, body)  # type: ignore[arg-type]


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that would page someone: errors, or anything with a traceback."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]
