"""The HTML interface in headless Chromium against the real processes: track a user whose
gists are on (simulated) GitHub, read them, mark them seen, stop tracking; Pipedrive agrees
at each step. A gist description that is an XSS payload shows as text and runs nothing."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest

from sandbox.launch import Suite
from tests.e2e.conftest import url
from tests.e2e.test_demo import activities_of, deal_of, new_gist, pipedrive
from tests.gateway.browser import chromium
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


async def journey(suite: Suite, login: str) -> None:
    base = url(suite, "gateway")
    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))

        await page.goto(base + "/")
        key = suite.env.get("GATEWAY_API_KEY")
        if key:  # a key in the environment protects the pages: sign in first
            await page.fill("#api_key", key)
            await page.click("button:has-text('Sign in')")
        await page.fill("#login", login.lower())
        await page.click("button:has-text('Track')")
        assert f"Now tracking {login}" in await page.inner_text(".flash.ok")

        # The poller finds the gists, the writer records them; the page shows them.
        deadline = time.monotonic() + 20
        await page.goto(f"{base}/users/{login}")
        while await page.locator("li.gist").count() < 2:
            assert time.monotonic() < deadline, "the gists did not appear on the page"
            await asyncio.sleep(0.5)
            await page.reload()
        titles = {await t.inner_text() for t in await page.locator("li.gist h2").all()}
        assert titles == {XSS, "plain text"}
        assert await page.locator("li.gist img").count() == 0
        assert "note.md" in await page.inner_text("li.gist >> nth=0")
        link = page.locator("li.gist h2 a").first
        assert re.match(r"^https?://", await link.get_attribute("href") or "")
        assert await page.evaluate("window.__xss") is None

        await page.click("button:has-text('Mark all 2 as seen')")
        assert await page.inner_text(".flash.ok") == "Marked 2 gists as seen."
        assert "No new gists" in await page.inner_text("main")

        await page.click("button:has-text('Stop tracking')")
        assert f"Stopped tracking {login}" in await page.inner_text(".flash.ok")
        assert await page.locator("tr", has_text=login).count() == 0
        assert await page.evaluate("window.__xss") is None
        assert dialogs == []


def test_track_read_mark_seen_and_untrack_in_a_browser(suite: Suite) -> None:
    login = f"Page-{uuid.uuid4().hex[:6]}"
    new_gist(suite, login, XSS)
    new_gist(suite, login, "plain text")
    asyncio.run(journey(suite, login))

    deal = wait_for(lambda: deal_of(pipedrive(suite), login), what="the deal")
    wait_for(
        lambda: all(a["done"] for a in activities_of(pipedrive(suite), deal)),
        what="the activities marked done",
    )
    wait_for(
        lambda: (deal_of(pipedrive(suite), login) or {}).get("status") == "lost",
        what="the deal marked lost",
    )
    state = pipedrive(suite)
    assert len(activities_of(state, deal)) == 2  # kept, not deleted
    assert [p["name"] for p in state["persons"]].count(login) == 1
