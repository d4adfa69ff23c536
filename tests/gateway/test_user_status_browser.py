"""The user's page in headless Chromium: how polling goes reads as a person would read it,
and an error text that is markup stays text."""

from __future__ import annotations

import pytest

from gistsync.contracts import PollError
from tests.gateway.browser import chromium
from tests.gateway.conftest import StartGateway
from tests.gateway.fakes import XSS, FakeServices, World, gist
from tests.gateway.test_user_status import FAILING, T1

pytestmark = pytest.mark.browser


async def test_the_polling_panel_reads_plainly_and_runs_nothing(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    world = World()
    world.add_user("OctoCat", gist("aa11", "Hello world", ("hello.py", "Python")))
    world.track("OctoCat")
    world.polls["octocat"] = FAILING.model_copy(update={"last_error": PollError(at=T1, text=XSS)})
    world.serve(peers)
    gateway = await start_gateway()
    base = str(gateway.make_url("")).rstrip("/")

    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(base + "/users/OctoCat")
        panel = page.locator("#polling")
        assert await panel.is_visible()
        text = await panel.inner_text()
        for line in (
            "Polling",
            "Last poll",
            "2026-03-02 09:30:00 UTC",
            "Last change seen",
            "2026-03-02 09:00:05 UTC",
            "Polled every",
            "4 min (2 failed polls in a row)",
            "Next poll",
            "2026-03-02 09:34:00 UTC",
        ):
            assert line in text, (line, text)
        assert XSS in text  # the error's markup, shown as what it is
        assert await panel.locator(".failed").is_visible()
        assert await page.evaluate("window.__xss") is None
        assert await page.locator("#gist-aa11").is_visible()

        # The poller falls silent: the panel says so, the gists are still there.
        del peers.answers["query.poll_status"]
        await page.reload()
        assert await page.get_attribute("#polling", "data-state") == "unknown"
        assert "Polling status unknown" in await page.inner_text("#polling")
        assert await page.locator("#gist-aa11").is_visible()
        assert errors == []
