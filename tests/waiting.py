"""Waiting for what other processes do: poll a condition until it holds or time runs out."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str = "condition", timeout: float = 20.0) -> T:
    """Returns the first truthy result of `check()`; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(0.1)


async def eventually(
    check: Callable[[], Awaitable[bool] | object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """The same inside an event loop; `check` may also be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(0.02)
