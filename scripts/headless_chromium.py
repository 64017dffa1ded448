"""Debian's chromium, headless, as Playwright should start it on these machines.

No browser download (the machine can't fetch one): Playwright drives /usr/bin/chromium.
The flags are the ones that work without a display, a GPU or a network beyond
127.0.0.1: without the background-networking ones, chromium's own connections are
refused by the closed network, many at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=HEADLESS_FLAGS)
