"""Writer throughput: a burst of new gists straight onto the writer's queue, against
Pipedrive's burst limit (Lite: 20 requests per 2 s), counted on the simulator's clock."""

from __future__ import annotations

import asyncio
import uuid

from bench.context import Bench
from bench.control import requests
from bench.figures import Figure, at_least, at_most, runs
from bench.timing import wait_activities
from gistsync.broker import Broker
from gistsync.contracts import Gist, GistDiscovered, GistFile, utcnow
from sandbox.config import PipedriveLimits

SECTION = "Writer throughput"


def gist_event(login: str) -> GistDiscovered:
    gist_id = uuid.uuid4().hex
    gist = Gist(
        id=gist_id,
        html_url=f"https://gist.github.com/{gist_id}",
        description="burst",
        files=(GistFile(filename="burst.py", language="Python"),),
        created_at=utcnow(),
    )
    return GistDiscovered(login=login, gist=gist)


async def run(bench: Bench) -> list[Figure]:
    sizes = bench.options.sizes
    limits = PipedriveLimits()  # the simulator's, and the writer's own limiter's, defaults
    limit = limits.burst_limit / limits.burst_window_seconds
    # A whole number of windows' worth, at least two.
    count = limits.burst_limit * max(2, round(sizes.writer_events / limits.burst_limit))
    rates: list[float] = []
    rejected: list[float] = []
    async with bench.suite(
        "writer", users=sizes.writer_users, gists_per_user=0, services=("pipedrive_writer",)
    ) as running:
        broker = Broker(
            bench.options.amqp_url,
            prefix=running.stack.prefix,
            service="bench",
            partitions=running.stack.topology.partitions,  # routed as the services route
        )
        await broker.connect()
        try:
            for _ in range(bench.options.runs):
                await asyncio.sleep(limits.burst_window_seconds + 0.5)  # fresh windows
                await running.sims.reset_stats("pipedrive")
                # One user's gists are written one at a time: spread them over many users.
                events = [gist_event(running.logins[n % len(running.logins)]) for n in range(count)]
                await asyncio.gather(*(broker.publish(event) for event in events))
                ids = [event.gist.id for event in events]
                timeout = 3 * len(ids) / limit + 30
                written = await wait_activities(running.sims, ids, timeout)
                done = sorted(t for t in written.values() if t is not None)
                if len(done) < len(ids):
                    raise TimeoutError(f"the burst was not written in {timeout:g} s")
                # The first window's worth goes at once; each later window's when it opens:
                # over whole windows, that is the rate a long burst is written at.
                rates.append((len(done) - limits.burst_limit) / (done[-1] - done[0]))
                stats = await running.sims.stats("pipedrive")
                rejected.append(requests(stats, "POST /activities", "429"))
        finally:
            await broker.close()
    basis = f"{runs(len(rates))} of {count} gists over {sizes.writer_users} users"
    return [
        Figure(SECTION, "Activities per second, sustained", "/s", rates, basis),
        Figure(
            SECTION,
            f"Share of the burst limit ({limit:g}/s)",
            "",
            [rate / limit for rate in rates],
            basis,
            at_least(0.9),
        ),
        Figure(SECTION, "429s per burst", "", rejected, basis, at_most(1, "0 after the first")),
    ]
