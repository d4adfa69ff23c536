"""Headless Chromium for the page tests: Debian's /usr/bin/chromium (or the executable named
by the CHROMIUM environment variable) driven by Playwright, which must never download a
browser of its own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import need

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
INSTALLED = CHROMIUM.exists()
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@asynccontextmanager
async def chromium(extra_args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    if not INSTALLED:
        need(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        need("the playwright package (pip install playwright; never `playwright install`)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*ARGS, *extra_args],
        )
        try:
            yield browser
        finally:
            await browser.close()
