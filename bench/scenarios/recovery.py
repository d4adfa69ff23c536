"""Scale: a full restart with 1,000 users and 20,000 gists already synced, timed until the
suite is steady again; then, on that suite, propagation at 1,000 users on one GitHub token
(default limits: 900 points a minute, 5,000 an hour) and whether GitHub ever said "rate
limited".

The services keep nothing on disk, so starting them against simulators that already hold
everything is a full restart: the writer re-reads Pipedrive, the poller asks the writer
who is tracked and reads every user once, re-publishing each gist, which the writer finds
known.
"""

from __future__ import annotations

import time

from bench.context import Bench, Running, wait_steady
from bench.control import rate_limited, requests
from bench.figures import Figure, at_most, exactly
from bench.observe import total
from bench.scenarios import propagation
from sandbox.launch import SERVICES

SECTION = "Restart and scale (one GitHub token)"
FULL_USERS = 1_000


def was(full: bool, before: str) -> str:
    """The figure measured before the writer read the org in whole pages (2026-12-05)."""
    return f"before the org-wide read: {before}" if full else ""


async def run(bench: Bench) -> list[Figure]:
    sizes = bench.options.sizes
    users, per_user = sizes.scale_users, sizes.scale_gists_per_user
    scale = f"{users:,} users, {users * per_user:,} gists"
    # No service yet: seeded, and with the latency already on, the restart is what is timed.
    async with bench.suite(
        f"recovery-{users}", users=users, gists_per_user=per_user, services=()
    ) as running:
        await running.sims.reset_stats()
        started = time.monotonic()
        await running.stack.start(*SERVICES, wait=False)
        await running.stack.wait_ready("pipedrive_writer", timeout=900)
        reread = time.monotonic() - started  # the writer's cache is loaded: it answers
        await wait_steady(running, timeout=900)
        took = time.monotonic() - started
        for service in SERVICES:
            await running.stack.wait_ready(service, timeout=60)
        pipedrive = await running.sims.stats("pipedrive")
        github = await running.sims.stats("github")
        full = users == FULL_USERS  # the figures before the org-wide read are for this size
        figures = [
            Figure(
                SECTION,
                f"Restart to steady, {scale}",
                "s",
                [took],
                "1 run",
                at_most(20) if full else None,
                note=was(full, "201 s; now bound by the poller's first read of every user"),
            ),
            Figure(
                SECTION,
                "of which the writer's re-read of Pipedrive",
                "s",
                [reread],
                "1 run",
                note=was(full, "126 s"),
            ),
            Figure(
                SECTION,
                "Pipedrive requests of the restart",
                "",
                [requests(pipedrive)],
                "1 run",
                at_most(60) if full else None,
                note=was(
                    full,
                    "1,003 (each deal's activities); README: 1 search, the org's deal pages,"
                    " its deleted deals, the account's activity pages of 500",
                ),
            ),
            Figure(
                SECTION,
                "Pipedrive tokens of the restart",
                "",
                [pipedrive["tokens_spent"]],
                "1 run",
                note=was(full, "10,040"),
            ),
            Figure(SECTION, "GitHub requests of the restart", "", [requests(github)], "1 run"),
        ]
        figures += await propagation.measure(
            bench, running, target=None, gists=sizes.scale_propagation_gists
        )
        figures.append(await rate_limits(running, since=started))
    return figures


async def rate_limits(running: Running, *, since: float) -> Figure:
    """Rate-limit answers over the whole run: the simulator's count and the poller's own."""
    answered = rate_limited(await running.sims.stats("github"))
    seen = total(await running.metrics("github_poller"), "gistsync_github_rate_limited_total")
    minutes = (time.monotonic() - since) / 60
    return Figure(
        SECTION,
        "GitHub rate-limit answers (429/403)",
        "",
        [float(answered)],
        f"{minutes:.1f} min from restart",
        exactly(0),
        note=f"the poller counted {seen:.0f}",
    )
