"""This run's yardsticks, so that figures that depend on the machine can be read against
the machine: a fixed pure-Python loop (the CPU), and a publish → consume round trip on the
RabbitMQ every message of the suite goes through (a durable quorum queue, persistent,
confirmed, as the services use it)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from bench.context import Baseline, Bench
from bench.figures import Figure, runs

SECTION = "Baseline (this machine, this run)"
LOOP = 5_000_000
ROUND_TRIPS = 200


def cpu_loop() -> float:
    """Seconds for a fixed amount of interpreter work."""
    started = time.perf_counter()
    acc = 0
    for n in range(LOOP):
        acc = (acc + n * n) % 1_000_003
    return time.perf_counter() - started


async def broker_round_trips(amqp_url: str, queue_name: str) -> tuple[float, str]:
    """Median milliseconds of `ROUND_TRIPS` round trips, and the broker's version."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        transport = connection.transport
        version = transport.connection.server_properties.get("version") if transport else None
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        try:
            return await _round_trips(channel, queue), str(version or "?")
        finally:
            await queue.delete(if_unused=False, if_empty=False)


async def _round_trips(channel: AbstractChannel, queue: AbstractQueue) -> float:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()
        arrived.put_nowait(time.perf_counter())

    tag = await queue.consume(on_message)
    times = []
    for _ in range(ROUND_TRIPS):
        sent = time.perf_counter()
        message = aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, queue.name)
        times.append((await asyncio.wait_for(arrived.get(), 10) - sent) * 1000)
    await queue.cancel(tag)
    return statistics.median(times)


async def run(bench: Bench) -> list[Figure]:
    count = max(bench.options.runs, 3)
    loops = [await asyncio.to_thread(cpu_loop) for _ in range(count)]
    queue_name = f"bench-{uuid.uuid4().hex[:10]}.baseline"
    trips: list[float] = []
    version = "?"
    for _ in range(count):
        median, version = await broker_round_trips(bench.options.amqp_url, queue_name)
        trips.append(median)
    bench.baseline = Baseline(statistics.median(loops), statistics.median(trips), version)
    return [
        Figure(SECTION, f"CPU loop ({LOOP:,} iterations)", "s", loops, runs(count)),
        Figure(
            SECTION,
            "RabbitMQ round trip (publish confirmed → consumed)",
            "ms",
            trips,
            f"{runs(count)} x {ROUND_TRIPS}, median each",
        ),
    ]
