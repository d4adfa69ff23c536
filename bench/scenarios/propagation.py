"""Propagation: a gist made on GitHub → its activity exists in Pipedrive, at the small
points (10 and 75 users); the large one runs with the restart (`recovery`)."""

from __future__ import annotations

from bench.context import Bench, Running
from bench.figures import Figure, Target, at_most, number
from bench.timing import propagation

SECTION = "Propagation (gist created → activity exists)"
# The target at 75 users: p99 within the poll interval plus a second.
TARGET_USERS = 75
POLL_INTERVAL = 5.0


async def run(bench: Bench) -> list[Figure]:
    figures: list[Figure] = []
    for users in bench.options.sizes.propagation_users:
        async with bench.suite(f"propagation-{users}", users=users, gists_per_user=2) as running:
            target = at_most(POLL_INTERVAL + 1, "≤ 6 s") if users == TARGET_USERS else None
            figures += await measure(bench, running, target=target)
    return figures


async def measure(
    bench: Bench,
    running: Running,
    *,
    target: Target | None,
    gists: int | None = None,
) -> list[Figure]:
    """p50/p95/p99 of gists made over `propagation_seconds` on a steady suite."""
    sizes = bench.options.sizes
    users = len(running.logins)
    interval = await running.effective_interval()
    count = gists or sizes.propagation_gists
    seconds = sizes.propagation_seconds * count / sizes.propagation_gists  # the same pace
    found = await propagation(
        running.sims, running.logins, gists=count, seconds=seconds, timeout=2 * interval + 30
    )
    if not found.delays:
        raise RuntimeError(f"no gist reached Pipedrive at {users} users")
    basis = f"1 run, {len(found.delays)} gists"
    note = f"{found.missing} gists never arrived" if found.missing else ""
    figures = [
        Figure(
            SECTION,
            f"{users:,} users: effective poll interval",
            "s",
            [interval],
            "the poller's gauge",
        )
    ]
    for q in (50, 95, 99):
        value = found.at(q)
        figures.append(
            Figure(
                SECTION,
                f"{users:,} users: p{q}",
                "s",
                [value],
                basis,
                target if q == 99 else None,
                f"{number(value / interval)}x interval",
                note,
            )
        )
    return figures
