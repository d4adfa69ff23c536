"""Gateway: `wrk` with 50 connections on the reads, each answered over RabbitMQ by the writer
(whose answers come from its cache: no upstream call)."""

from __future__ import annotations

import asyncio

from bench.context import Bench, Running
from bench.control import requests
from bench.figures import Figure, Target, at_least, below, runs
from bench.timing import until
from bench.wrk import CONNECTIONS, Load, ensure_wrk, load

SECTION = f"Gateway ({CONNECTIONS} connections)"
USERS = 100
WARM_UP_SECONDS = 1.0


async def run(bench: Bench) -> list[Figure]:
    wrk = await asyncio.to_thread(ensure_wrk)
    # wrk is one client: lift the per-client limit on /show (a change: it marks gists seen).
    env = {"GATEWAY_RATE_LIMIT_BURST": "1000000", "GATEWAY_RATE_LIMIT_PER_MINUTE": "1e9"}
    figures: list[Figure] = []
    async with bench.suite("gateway", users=USERS, gists_per_user=2, env=env) as running:
        login = running.logins[0]
        await see_everything(running, login)
        paths = {"/list": at_least(2000), "/api/users": None, f"/show?user={login}": None}
        for path, rate_target in paths.items():
            url = f"{running.stack.url('gateway')}{path}"
            await load(wrk, url, WARM_UP_SECONDS)
            loads = [
                await load(wrk, url, bench.options.sizes.wrk_seconds)
                for _ in range(bench.options.runs)
            ]
            figures += describe(bench, path.split("?")[0], loads, rate_target)
    return figures


async def see_everything(running: Running, login: str) -> None:
    """One /show first, so the measured ones find nothing new (and change nothing)."""
    await running.sims.reset_stats("pipedrive")
    assert (await running.gateway(f"/show?user={login}")).status_code == 200

    async def marked() -> float:
        stats = await running.sims.stats("pipedrive")
        return requests(stats, "PATCH /activities/{id}", "200")

    await until(marked, 2, timeout=30)
    await asyncio.sleep(1.0)


def describe(
    bench: Bench, path: str, loads: list[Load], rate_target: Target | None
) -> list[Figure]:
    base = bench.baseline
    bad = sum(one.bad for one in loads)
    note = f"{bad} answers not 2xx/3xx, or socket errors" if bad else ""
    basis = f"{runs(len(loads))} x {bench.options.sizes.wrk_seconds:g} s"
    rate = Figure(SECTION, f"{path}: requests/s", "/s", [one.requests_per_second for one in loads])
    p50 = Figure(SECTION, f"{path}: p50", "ms", [one.p50_ms for one in loads])
    p99 = Figure(SECTION, f"{path}: p99", "ms", [one.p99_ms for one in loads], target=below(50))
    rate.target, rate.note = rate_target, note
    rate.ratio = base.per_loop(rate.median or 0.0)
    for figure in (p50, p99):
        figure.ratio = base.in_round_trips(figure.median or 0.0)
    for figure in (rate, p50, p99):
        figure.basis = basis
    return [rate, p50, p99]
