"""Waiting for the broker, on a fake clock: never a give-up, one warning per outage, no
credentials in it; and a service that is told to stop while it waits stops cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gistsync.service import _serve
from gistsync.transport.connection import Outage, broker_address, until_done

LOGGER = "gistsync.transport.connection"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def refusing(times: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise ConnectionRefusedError(111, "Connection refused")
        return "connected"

    return calls, attempt


async def test_the_wait_for_the_broker_never_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    clock = FakeClock()
    calls, attempt = refusing(20_000)  # a day of virtual time at the 5 s cap
    outage = Outage("amqp://rabbit:5672/")
    result = await until_done(attempt, outage, sleep=clock.sleep, clock=clock)
    assert result == "connected"
    assert calls[0] == 20_001
    assert clock.now > 24 * 3600  # far past the 60 s the services used to give up after
    assert max(clock.waits) == 5.0  # capped
    assert clock.waits[:4] == [0.5, 1.0, 2.0, 4.0]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "broker amqp://rabbit:5672/ not reachable; waiting for it (not ready meanwhile)"
    ]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and infos[0].startswith("broker amqp://rabbit:5672/ reachable again")


async def test_each_outage_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    outage = Outage("amqp://rabbit:5672/")
    for _ in range(3):
        _, attempt = refusing(50)
        await until_done(attempt, outage, sleep=clock.sleep, clock=clock)
    outage.lost()
    outage.lost()
    outage.over()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 4  # three outages at connect, one lost later


async def test_an_explicit_bound_is_still_honoured() -> None:
    clock = FakeClock()
    _, attempt = refusing(10**9)
    with pytest.raises(ConnectionRefusedError):
        await until_done(attempt, Outage("x"), retry_for=60, sleep=clock.sleep, clock=clock)
    assert 55 <= clock.now <= 60


def test_the_broker_is_named_without_credentials() -> None:
    address = broker_address("amqps://gist-user:s3cr3t-Pa55@rabbit.example:5673/prod")
    assert address == "amqps://rabbit.example:5673/prod"
    assert broker_address("amqp://guest:guest@127.0.0.1/") == "amqp://127.0.0.1:5672/"
    assert broker_address("amqp://u:p@h:1") == "amqp://h:1/"


async def test_a_stop_while_starting_cancels_the_start_up_and_cleans_up() -> None:
    waiting = asyncio.Event()
    cleaned = asyncio.Event()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            waiting.set()
            await asyncio.Event().wait()  # a broker that never comes
            yield
        finally:
            cleaned.set()

    loop = asyncio.get_running_loop()
    serving = asyncio.create_task(_serve("test", lifespan))
    try:
        await asyncio.wait_for(waiting.wait(), 10)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, 10)
        assert cleaned.is_set()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
