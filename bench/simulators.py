"""`python -m bench.simulators`: the GitHub and Pipedrive simulators (as `python -m sandbox`
runs them) plus a control port for the benchmarks only:

    GET  /_bench/ready
    POST /_bench/seed     {"logins": [...], "gists_per_user": 2, "synced": true}
    POST /_bench/gists    {"logins": [...]}  one new gist each, timed: {"ids": [...]}
    POST /_bench/timings  {"ids": [...]}     {"created": {id: t}, "activity": {id: t}}

Times are this process's `time.monotonic()`: a gist's creation and its activity's are read on
one clock, so their difference is the propagation delay.

Env: SANDBOX_HOST, SANDBOX_GITHUB_PORT, SANDBOX_PIPEDRIVE_PORT, SANDBOX_GITHUB_TOKEN,
SANDBOX_PIPEDRIVE_TOKEN (as `python -m sandbox`), BENCH_CONTROL_PORT, PIPEDRIVE_ORG_NAME.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Mapping

from aiohttp import web

from bench.seeding import new_gist, seed
from bench.simstate import BenchPipedriveState
from sandbox.github_state import GitHubState
from sandbox.testing import (
    DEFAULT_GITHUB_TOKEN,
    DEFAULT_PIPEDRIVE_TOKEN,
    Sandbox,
    run_sandbox,
    start_app,
)

log = logging.getLogger("bench.simulators")


def control_app(sandbox: Sandbox, pipedrive: BenchPipedriveState, org_name: str) -> web.Application:
    created: dict[str, float] = {}
    counter = itertools.count(1)

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    async def seed_users(request: web.Request) -> web.Response:
        body = await request.json()
        started = time.monotonic()
        seeded = seed(
            sandbox.github,
            pipedrive,
            list(body["logins"]),
            gists_per_user=int(body.get("gists_per_user", 0)),
            synced=bool(body.get("synced", True)),
            org_name=org_name,
            github_url=sandbox.github_url,
        )
        took = round(time.monotonic() - started, 2)
        return web.json_response({**seeded.__dict__, "seconds": took})

    async def add_gists(request: web.Request) -> web.Response:
        body = await request.json()
        ids = []
        for login in body["logins"]:
            gist_id = new_gist(sandbox.github, login, next(counter))
            created[gist_id] = time.monotonic()
            ids.append(gist_id)
        return web.json_response({"ids": ids})

    async def timings(request: web.Request) -> web.Response:
        ids: list[str] = (await request.json())["ids"]
        return web.json_response(
            {
                "created": {i: created.get(i) for i in ids},
                "activity": {i: pipedrive.activity_at.get(i) for i in ids},
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/_bench/ready", ready)
    app.router.add_post("/_bench/seed", seed_users)
    app.router.add_post("/_bench/gists", add_gists)
    app.router.add_post("/_bench/timings", timings)
    return app


async def serve(env: Mapping[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host = env.get("SANDBOX_HOST", "127.0.0.1")
    pipedrive = BenchPipedriveState()
    async with run_sandbox(
        host,
        int(env["SANDBOX_GITHUB_PORT"]),
        int(env["SANDBOX_PIPEDRIVE_PORT"]),
        github_token=env.get("SANDBOX_GITHUB_TOKEN", DEFAULT_GITHUB_TOKEN),
        pipedrive_token=env.get("SANDBOX_PIPEDRIVE_TOKEN", DEFAULT_PIPEDRIVE_TOKEN),
        github_state=GitHubState(),
        pipedrive_state=pipedrive,
    ) as sandbox:
        org_name = env.get("PIPEDRIVE_ORG_NAME", "GITHUB_GISTS")
        runner, port = await start_app(
            control_app(sandbox, pipedrive, org_name), host, int(env["BENCH_CONTROL_PORT"])
        )
        log.info(
            json.dumps(
                {"github": sandbox.github_url, "pipedrive": sandbox.pipedrive_url, "control": port}
            )
        )
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(os.environ))


if __name__ == "__main__":
    main()
