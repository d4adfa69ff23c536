"""Upstream cost: what each kind of event costs GitHub and Pipedrive, counted by the
simulators themselves (every request they answer, and Pipedrive's tokens)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from bench.context import Bench, Running
from bench.control import Stats, requests
from bench.figures import Figure, Target, exactly
from bench.timing import until, wait_activities

SECTION = "Upstream cost"
GISTS = "GET /users/{username}/gists"
USER = "GET /users/{username}"
PATCH_ACTIVITY = "PATCH /activities/{id}"
# Anything a change sets off has landed well within this, latency included.
SETTLE_SECONDS = 1.0


async def run(bench: Bench) -> list[Figure]:
    sizes = bench.options.sizes
    # One client makes every /new and /show here: lift the per-client limit on changes.
    env = {"GATEWAY_RATE_LIMIT_BURST": "10000"}
    async with bench.suite("cost", users=sizes.cost_users, gists_per_user=2, env=env) as running:
        figures = await idle(running, sizes.idle_seconds)
        figures += await new_gists(running, sizes.cost_samples)
        figures += await new_users(running, sizes.cost_samples)
        figures += await arrivals(running, sizes.cost_samples)
        figures += await shows(running, sizes.cost_samples)
    return figures


async def idle(running: Running, seconds: float) -> list[Figure]:
    """Nothing changes for `seconds`: what the polling costs, extrapolated to an hour."""
    users = len(running.logins)
    interval = await running.effective_interval()
    await asyncio.sleep(interval)  # a whole cycle at the new latency first
    await running.sims.reset_stats()
    await asyncio.sleep(seconds)
    github = await running.sims.stats("github")
    pipedrive = await running.sims.stats("pipedrive")
    polls = requests(github, GISTS)
    cycles = seconds / interval
    basis = f"{seconds:g} s idle, {cycles:.1f} cycles of {interval:.1f} s"
    per_hour = 3600 / seconds
    observed = f"{requests(pipedrive)} requests seen in {seconds:g} s, x {per_hour:.0f}"
    return [
        Figure(
            SECTION,
            f"GitHub requests per user per poll cycle ({users} users, idle)",
            "",
            [polls / users / cycles],
            basis,
            Target("1 (± 5%)", lambda v: abs(v - 1) <= 0.05),
            predecessor="1 (7,080 an hour at 10 users: over the 5,000 limit)",
        ),
        Figure(
            SECTION,
            "GitHub answers that were 304 (free), idle",
            "%",
            [100 * requests(github, GISTS, "304") / polls if polls else 0.0],
            basis,
            exactly(100),
            predecessor="0 % (all 200s)",
        ),
        Figure(
            SECTION,
            f"Pipedrive requests per idle hour ({users} users)",
            "",
            [requests(pipedrive) * per_hour],
            basis,
            exactly(0),
            note=observed,
            predecessor="7,788 at 10 users",
        ),
        Figure(
            SECTION,
            f"Pipedrive tokens per idle hour ({users} users)",
            "",
            [pipedrive["tokens_spent"] * per_hour],
            basis,
            exactly(0),
            predecessor="about 78,000 at 10 users (a Lite day in 23 min)",
        ),
    ]


async def new_gists(running: Running, count: int) -> list[Figure]:
    """One new gist at a time, on users known and idle: the Pipedrive calls it makes."""
    timeout = 3 * await running.effective_interval() + 15
    spent: list[Stats] = []
    for login in running.logins[:count]:
        await running.sims.reset_stats("pipedrive")
        ids = await running.sims.new_gists([login])
        if None in (await wait_activities(running.sims, ids, timeout)).values():
            raise TimeoutError(f"no activity for a new gist of {login} in {timeout:g} s")
        await asyncio.sleep(SETTLE_SECONDS)
        spent.append(await running.sims.stats("pipedrive"))
    basis = f"{count} gists, one at a time"
    return [
        Figure(
            SECTION,
            "Pipedrive requests per new gist",
            "",
            per(spent),
            basis,
            exactly(1),
            predecessor="12 (a whole cycle)",
        ),
        Figure(SECTION, "Pipedrive tokens per new gist", "", tokens(spent), basis, exactly(5)),
    ]


async def new_users(running: Running, count: int) -> list[Figure]:
    """`/new` for GitHub users with no gist yet: the lookup, the person and the deal."""
    pipedrive: list[Stats] = []
    lookups: list[float] = []
    for n in range(count):
        login = f"newcomer{n}"
        await running.sims.add_github_user(login)
        await running.sims.reset_stats()
        response = await running.gateway(f"/new?user={login}")
        if response.status_code != 202:
            raise RuntimeError(f"/new?user={login} answered {response.status_code}")
        await until(partial(is_tracked, running, login), 1, timeout=30)
        await asyncio.sleep(SETTLE_SECONDS)  # the poller's first read of the new user
        pipedrive.append(await running.sims.stats("pipedrive"))
        lookups.append(requests(await running.sims.stats("github"), USER))
    basis = f"{count} users, one at a time"
    note = "README: 4 requests, 50 tokens (deal search, person search, person, deal)"
    return [
        Figure(SECTION, "GitHub user lookups per new user", "", lookups, basis, exactly(1)),
        Figure(SECTION, "Pipedrive requests per new user", "", per(pipedrive), basis, note=note),
        Figure(SECTION, "Pipedrive tokens per new user", "", tokens(pipedrive), basis),
    ]


async def arrivals(running: Running, count: int, gists: int = 5) -> list[Figure]:
    """`/new` for GitHub users who already have `gists` gists: how long until the last one is
    an activity, on this process's clock (the monotonic clock the simulators share)."""
    took: list[float] = []
    for n in range(count):
        login = f"arrival{n}"
        await running.sims.add_github_user(login)
        ids = await running.sims.new_gists([login] * gists)
        started = time.monotonic()
        response = await running.gateway(f"/new?user={login}")
        if response.status_code != 202:
            raise RuntimeError(f"/new?user={login} answered {response.status_code}")
        activity = await wait_activities(running.sims, ids, timeout=60)
        if None in activity.values():
            raise TimeoutError(f"the gists of {login} were not all activities in 60 s")
        took.append(max(t for t in activity.values() if t is not None) - started)
    return [
        Figure(
            SECTION,
            f"A new user's {gists} gists in Pipedrive, from /new",
            "s",
            took,
            f"{count} users, one at a time",
            predecessor="5.0 s",
            note="the predecessor's figure is without simulated latency",
        )
    ]


async def shows(running: Running, count: int) -> list[Figure]:
    """`/show` of a user with one new gist (it is marked seen), then again (nothing new)."""
    timeout = 3 * await running.effective_interval() + 15
    one_new: list[Stats] = []
    nothing_new: list[Stats] = []
    for login in running.logins[-count:]:
        await show(running, login, wait_for_marks=2)  # the two seeded gists: seen now
        ids = await running.sims.new_gists([login])
        if None in (await wait_activities(running.sims, ids, timeout)).values():
            raise TimeoutError(f"no activity for a new gist of {login} in {timeout:g} s")
        one_new.append(await show(running, login, wait_for_marks=1))
        nothing_new.append(await show(running, login, wait_for_marks=0))
    basis = f"{count} users"
    return [
        Figure(
            SECTION,
            "Pipedrive requests per /show, 1 new gist",
            "",
            per(one_new),
            basis,
            predecessor="5 for a /show of 3 gists",
        ),
        Figure(SECTION, "Pipedrive tokens per /show, 1 new gist", "", tokens(one_new), basis),
        Figure(SECTION, "Pipedrive requests per /show, nothing new", "", per(nothing_new), basis),
    ]


async def show(running: Running, login: str, *, wait_for_marks: int) -> Stats:
    """GET /show, then what Pipedrive saw once `wait_for_marks` activities were marked."""
    await running.sims.reset_stats("pipedrive")
    response = await running.gateway(f"/show?user={login}")
    if response.status_code != 200:
        raise RuntimeError(f"/show?user={login} answered {response.status_code}")

    async def marked() -> float:
        return requests(await running.sims.stats("pipedrive"), PATCH_ACTIVITY, "200")

    await until(marked, wait_for_marks, timeout=30)
    await asyncio.sleep(SETTLE_SECONDS)
    return await running.sims.stats("pipedrive")


async def is_tracked(running: Running, login: str) -> float:
    """1 once the writer has the user (its person and deal exist): the gateway says so."""
    return float((await running.gateway(f"/api/users/{login}")).status_code == 200)


def per(spent: list[Stats]) -> list[float]:
    return [float(requests(stats)) for stats in spent]


def tokens(spent: list[Stats]) -> list[float]:
    return [float(stats["tokens_spent"]) for stats in spent]
