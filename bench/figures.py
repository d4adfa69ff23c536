"""One row of the table: what was measured, each run's value, the target it is held to."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    text: str  # as the issue states it, e.g. "≥ 2,000"
    met: Callable[[float], bool]


def at_most(limit: float, text: str | None = None) -> Target:
    return Target(text or f"≤ {number(limit)}", lambda value: value <= limit)


def below(limit: float, text: str | None = None) -> Target:
    return Target(text or f"< {number(limit)}", lambda value: value < limit)


def at_least(limit: float, text: str | None = None) -> Target:
    return Target(text or f"≥ {number(limit)}", lambda value: value >= limit)


def exactly(wanted: float) -> Target:
    return Target(number(wanted), lambda value: math.isclose(value, wanted, abs_tol=1e-9))


@dataclass
class Figure:
    section: str
    name: str
    unit: str
    samples: list[float]  # one per run (or per event counted)
    basis: str = ""  # what the samples are, e.g. "3 runs" or "1 run, 60 gists"
    target: Target | None = None
    ratio: str = ""  # the machine-dependent value against this run's baseline
    note: str = ""
    # The same figure for the Node.js app gistsync replaced, where it applies: measured once
    # against local fakes of both APIs (10 users, 5 gists each, 5 s interval), not by this run.
    predecessor: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> str:
        if len(self.samples) < 2:
            return "—"
        return f"{number(min(self.samples))}-{number(max(self.samples))}"

    @property
    def met(self) -> str:
        if self.target is None:
            return ""
        if self.median is None:
            return "not measured"
        return "yes" if self.target.met(self.median) else "**no**"

    @property
    def value(self) -> str:
        if self.median is None:
            return "—"
        return f"{number(self.median)} {self.unit}".strip()


def number(value: float) -> str:
    """Readable at a glance: thousands separated, three significant digits below 100."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    digits = max(2 - math.floor(math.log10(abs(value))), 0)
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating between the two nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"
