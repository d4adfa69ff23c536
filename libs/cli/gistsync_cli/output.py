"""What the commands print: plain lines with every known secret masked, and the exit codes
they all share."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from gistsync.logs import MASK

EXIT_OK = 0
EXIT_FAILED = 1  # something checked failed, or some of what was asked was not found
EXIT_USAGE = 2  # bad arguments or settings
EXIT_UNREACHABLE = 3  # the broker, or the services behind it, could not be reached


@dataclass
class Output:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    secrets: set[str] = field(default_factory=set)

    def hide(self, secrets: Iterable[str]) -> None:
        # Too short a value would mask ordinary words; `logs.JsonFormatter` draws the same line.
        self.secrets.update(s for s in secrets if len(s) >= 4)

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def say(self, text: str) -> None:
        print(self.mask(text), file=self.out)

    def warn(self, text: str) -> None:
        print(self.mask(text), file=self.err)


def reason(exc: BaseException) -> str:
    """An error's name and text, for one line (masked by `Output` on the way out)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
