"""One way to run the whole suite as real processes, for every test that needs it (faults,
scale, and end-to-end and live monitoring once they adopt it) and for the benchmarks.

- `free_port`: a port nothing listens on now.
- `new_prefix`: broker names of a run's own, so runs never share a queue.
- `suite_env`: the environment of one suite: the simulators, the three services on free
  ports, a prefix of its own, and the settings the caller overrides.
- `running`: the suite's processes started in order, and however the block ends, stopped,
  with the tail of each log printed and every queue and exchange of the prefix deleted.
- `delete_topology`: every queue and exchange of a prefix.
- `topology`, `work_queues`, `ready`: a running suite's names, and what waits in them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aio_pika

from gistsync.broker import Topology, is_query_queue
from sandbox.launch import SERVICES, Suite, sandbox_env

# Deleting a queue that is not there is harmless: delete as many partitions as any run makes.
MOST_PARTITIONS = 8
EVERYTHING = ("sandbox", *SERVICES)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_prefix(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def suite_env(amqp_url: str, prefix: str, **settings: str) -> dict[str, str]:
    """The environment of one suite on `amqp_url` under `prefix`; `settings` last."""
    env = sandbox_env(os.environ, free_port(), free_port())
    env.update(
        AMQP_URL=amqp_url,
        AMQP_PREFIX=prefix,
        GATEWAY_PORT=str(free_port()),
        GATEWAY_OPS_PORT=str(free_port()),
        GITHUB_POLLER_PORT=str(free_port()),
        PIPEDRIVE_WRITER_PORT=str(free_port()),
    )
    env.update(settings)
    return env


async def delete_topology(amqp_url: str, prefix: str, partitions: int = MOST_PARTITIONS) -> None:
    top = Topology(prefix, partitions)
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in top.queue_names():
            await channel.queue_delete(queue)
        for exchange in top.exchange_names():
            await channel.exchange_delete(exchange)


@contextmanager
def running(
    env: Mapping[str, str],
    log_dir: Path,
    names: Iterable[str] = EVERYTHING,
    *,
    after_start: Callable[[Suite, str], None] | None = None,
    tail: int = 15,
) -> Iterator[Suite]:
    """The suite with `names` started in order (`after_start` is called after each one);
    on the way out, stopped and its broker names deleted."""
    suite = Suite(dict(env), log_dir)
    try:
        for name in names:
            suite.start(name)
            if after_start is not None:
                after_start(suite, name)
        yield suite
    finally:
        suite.stop_all()
        for name in suite.processes:
            print(f"--- {name} log (tail) ---\n{suite.tail(name, tail)}")
        asyncio.run(delete_topology(env["AMQP_URL"], env["AMQP_PREFIX"]))


def topology(suite: Suite) -> Topology:
    return Topology(suite.env["AMQP_PREFIX"], int(suite.env.get("PARTITIONS", 1)))


def work_queues(suite: Suite, service: str) -> list[str]:
    """The durable queues holding `service`'s work (its partitions), not its queries."""
    mine = f"{suite.env['AMQP_PREFIX']}.{service}"
    return [
        name
        for name in topology(suite).queue_names()
        if (name == mine or name.startswith(mine + ".")) and not is_query_queue(name)
    ]


async def _ready(amqp_url: str, queues: list[str]) -> int:
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        total = 0
        for name in queues:
            declared = await channel.declare_queue(name, passive=True)
            total += int(declared.declaration_result.message_count or 0)
        return total


def ready(suite: Suite, service: str) -> int:
    """Messages waiting in `service`'s work queues (not counting those delivered)."""
    return asyncio.run(_ready(suite.env["AMQP_URL"], work_queues(suite, service)))
