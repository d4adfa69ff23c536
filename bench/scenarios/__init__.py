"""The measurements, by the name `--only` takes, in the order a full run makes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.context import Bench
from bench.figures import Figure
from bench.scenarios import cost, gateway, memory, propagation, recovery, writer

Scenario = Callable[[Bench], Awaitable[list[Figure]]]

SCENARIOS: dict[str, Scenario] = {
    "cost": cost.run,
    "propagation": propagation.run,
    "writer": writer.run,
    "gateway": gateway.run,
    "memory": memory.run,
    "recovery": recovery.run,
}
