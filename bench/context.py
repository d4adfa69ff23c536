"""What every scenario gets: the options, an HTTP client, this run's baselines, and a way to
bring up a suite already holding its users and already steady."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.control import Sims
from bench.observe import Sample, rss_bytes, scrape, total
from bench.options import Options
from bench.stack import Stack, open_stack
from sandbox.launch import SERVICES


@dataclass
class Baseline:
    cpu_loop_seconds: float | None = None  # one fixed pure-Python loop
    broker_round_trip_ms: float | None = None  # publish (confirmed) → consume on RabbitMQ
    broker_version: str = "?"

    def per_loop(self, per_second: float) -> str:
        """A rate as "so many per CPU loop": the same on a faster machine if it scales."""
        if not self.cpu_loop_seconds:
            return ""
        return f"{per_second * self.cpu_loop_seconds:,.0f} per CPU loop"

    def in_round_trips(self, ms: float) -> str:
        if not self.broker_round_trip_ms:
            return ""
        return f"{ms / self.broker_round_trip_ms:.1f}x broker RTT"


@dataclass
class Running:
    """A suite that is up and steady: its processes, simulators and tracked users."""

    stack: Stack
    sims: Sims
    http: httpx.AsyncClient
    logins: list[str]
    gists: int  # how many the simulators hold for `logins`

    async def metrics(self, service: str) -> list[Sample]:
        return await scrape(self.http, self.stack.suite.ops_url(service))

    async def effective_interval(self) -> float:
        """The poller's own figure: the interval it polls every user at, now."""
        samples = await self.metrics("github_poller")
        return total(samples, "gistsync_poll_interval_effective_seconds")

    def rss(self, service: str) -> int:
        return rss_bytes(self.stack.pid(service))

    async def gateway(self, path: str) -> httpx.Response:
        return await self.http.get(f"{self.stack.url('gateway')}{path}", timeout=30)


@dataclass
class Bench:
    options: Options
    http: httpx.AsyncClient
    baseline: Baseline = field(default_factory=Baseline)

    @staticmethod
    def logins(count: int) -> list[str]:
        return [f"user{n:05d}" for n in range(count)]

    @asynccontextmanager
    async def suite(
        self,
        name: str,
        *,
        users: int,
        gists_per_user: int,
        services: tuple[str, ...] = SERVICES,
        env: Mapping[str, str] | None = None,
        github: dict[str, Any] | None = None,
        pipedrive: dict[str, Any] | None = None,
        latency: bool = True,
        steady_timeout: float = 300.0,
    ) -> AsyncIterator[Running]:
        """`users` tracked and synced (straight into the simulators), the services started
        and steady, then the simulators given their latency (`latency=False`: none)."""
        async with open_stack(self.options, name, env) as stack:
            sims = Sims(stack, self.http)
            await sims.configure("github", github or {})
            await sims.configure("pipedrive", pipedrive or {})
            logins = self.logins(users)
            seeded = await sims.seed(logins, gists_per_user) if users else {"gists": 0}
            running = Running(stack, sims, self.http, logins, int(seeded["gists"]))
            if services:
                await stack.start(*services, timeout=steady_timeout)
            if "github_poller" in services and "pipedrive_writer" in services:
                await wait_steady(running, timeout=steady_timeout)
            if latency:
                o = self.options
                await sims.latency(o.github_latency_ms, o.pipedrive_latency_ms)
            yield running


async def wait_steady(running: Running, *, timeout: float) -> float:
    """Waits until every user was read once since the start and every gist it published
    again was handled by the writer; returns how long that took."""
    started = time.monotonic()
    read = published = handled = 0.0
    while True:
        try:
            poller = await running.metrics("github_poller")
            writer = await running.metrics("pipedrive_writer")
        except httpx.HTTPError:
            pass  # still starting
        else:
            read = total(poller, "gistsync_polls_total", outcome="ok")
            published = total(poller, "gistsync_gists_discovered_total")
            handled = total(writer, "gistsync_messages_consumed_total", queue="pipedrive_writer")
            users, held = len(running.logins), running.gists
            if read >= users and published >= held and handled >= published:
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"not steady after {timeout:g} s: {read:.0f}/{len(running.logins)} users read, "
                f"{handled:.0f}/{published:.0f}/{running.gists} gists handled/published/held"
            )
        await asyncio.sleep(0.5)
