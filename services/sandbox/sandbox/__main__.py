"""`python -m sandbox`: both simulators until SIGTERM/SIGINT.

Env: SANDBOX_HOST (127.0.0.1), SANDBOX_GITHUB_PORT (9001), SANDBOX_PIPEDRIVE_PORT (9002),
SANDBOX_GITHUB_TOKEN, SANDBOX_PIPEDRIVE_TOKEN, SANDBOX_SEED (comma-separated logins that
start with 3 gists each).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping

from sandbox.github_state import GitHubState
from sandbox.testing import DEFAULT_GITHUB_TOKEN, DEFAULT_PIPEDRIVE_TOKEN, run_sandbox

log = logging.getLogger("sandbox")


def seed(state: GitHubState, logins: str) -> None:
    for login in (name.strip() for name in logins.split(",")):
        if not login:
            continue
        for n in range(1, 4):
            state.add_gist(
                login,
                {f"snippet_{n}.py": f"print('{login} #{n}')\n"},
                description=f"{login}'s gist #{n}",
            )


async def serve(env: Mapping[str, str]) -> None:
    github = GitHubState()
    seed(github, env.get("SANDBOX_SEED", ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with run_sandbox(
        env.get("SANDBOX_HOST", "127.0.0.1"),
        int(env.get("SANDBOX_GITHUB_PORT", "9001")),
        int(env.get("SANDBOX_PIPEDRIVE_PORT", "9002")),
        github_token=env.get("SANDBOX_GITHUB_TOKEN", DEFAULT_GITHUB_TOKEN),
        pipedrive_token=env.get("SANDBOX_PIPEDRIVE_TOKEN", DEFAULT_PIPEDRIVE_TOKEN),
        github_state=github,
    ) as sandbox:
        log.info("github simulator listening on %s", sandbox.github_url)
        log.info("pipedrive simulator listening on %s", sandbox.pipedrive_url)
        await stop.wait()
        log.info("stopping")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(os.environ))
    except ValueError as exc:  # a port that is not a number, an invalid seed login
        log.error("bad configuration: %s", exc)
        return 2
    except OSError as exc:  # typically: the port is taken
        log.error("cannot listen: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
