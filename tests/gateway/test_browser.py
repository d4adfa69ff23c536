"""The HTML interface in headless Chromium: sign in, add a user, read their gists, mark
them seen. A gist whose description is an XSS payload shows as text and runs nothing."""

from __future__ import annotations

import pytest

from tests.gateway.browser import chromium
from tests.gateway.conftest import API_KEY, StartGateway
from tests.gateway.fakes import XSS, FakeServices, World, gist

pytestmark = pytest.mark.browser


async def test_sign_in_track_read_and_mark_seen(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    world = World()
    world.add_user(
        "OctoCat",
        gist("aa11", "Hello world", ("hello.py", "Python"), day=1),
        gist("bb22", XSS, ("x.html", "HTML"), ("run.sh", "Shell"), day=2),
        gist("cc33", "Not a link", ("notes.md", "Markdown"), day=3, url="javascript:alert(3)"),
    )
    world.serve(peers)
    gateway = await start_gateway(gateway_api_key=API_KEY)
    base = str(gateway.make_url("")).rstrip("/")

    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # Protected: the list sends us to sign in, and a wrong key is refused.
        await page.goto(base + "/")
        assert page.url.startswith(base + "/login")
        await page.fill("#api_key", "not-the-key-at-all")
        await page.click("button:has-text('Sign in')")
        assert "That is not this gateway's API key." in await page.inner_text(".flash.error")
        await page.fill("#api_key", API_KEY)
        await page.click("button:has-text('Sign in')")
        assert page.url == base + "/"
        assert await page.inner_text(".flash.ok") == "Signed in."
        assert "No one is tracked yet" in await page.inner_text("main")

        # A bad name is refused with a message; a real one is tracked under GitHub's spelling.
        await page.fill("#login", "bad_name")
        await page.click("button:has-text('Track')")
        assert "is not a GitHub login" in await page.inner_text(".flash.error")
        await page.fill("#login", "octocat")
        await page.click("button:has-text('Track')")
        assert "Now tracking OctoCat" in await page.inner_text(".flash.ok")
        row = page.locator("tr", has_text="OctoCat")
        assert await row.locator(".count").inner_text() == "3"

        # The user's page: newest first, with files, languages, times and safe links.
        await page.click("a:has-text('OctoCat')")
        assert page.url == base + "/users/OctoCat"
        entries = page.locator("li.gist")
        assert await entries.count() == 3
        titles = [await t.inner_text() for t in await page.locator("li.gist h2").all()]
        assert titles == ["Not a link", XSS, "Hello world"]
        xss = page.locator("#gist-bb22")
        assert "x.html" in await xss.inner_text()
        assert "Shell" in await xss.locator(".files").inner_text()
        assert await xss.locator("time").get_attribute("datetime") == "2026-03-03T12:00:00Z"
        assert await xss.locator("img").count() == 0
        link = page.locator("#gist-aa11 h2 a")
        assert await link.get_attribute("href") == "https://gist.github.com/aa11"
        assert await page.locator("#gist-cc33 h2 a").count() == 0  # javascript: is no link
        assert await page.evaluate("window.__xss") is None
        assert dialogs == [] and errors == []

        # Mark them seen: the page says so and shows nothing new; the list agrees.
        await page.click("button:has-text('Mark all 3 as seen')")
        assert await page.inner_text(".flash.ok") == "Marked 3 gists as seen."
        assert "No new gists" in await page.inner_text("main")
        assert world.seen == {"aa11", "bb22", "cc33"}
        await page.click(".tabs a:has-text('All')")
        assert await page.locator("li.gist .seen").count() == 3
        await page.click("text=All users")
        assert await page.locator("tr", has_text="OctoCat").locator(".count").inner_text() == "0"

        await page.click("button:has-text('Sign out')")
        assert page.url.startswith(base + "/login")
        assert await page.evaluate("window.__xss") is None
        assert dialogs == [] and errors == []
