"""Log in to the dev instance as a new user would and photograph the dashboard.

Run by scripts/screenshot (its own venv with Playwright; the browser is Debian's
chromium, headless, with the flags that work on a machine without a display or GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from playwright.sync_api import sync_playwright

# Run as a file by Playwright's own venv: the repository root makes `scripts` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.headless_chromium import launch

USERNAME, PASSWORD = "dev", "heatcompute"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ha", default="http://127.0.0.1:8123")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(
            viewport={"width": args.width, "height": args.height}, locale="en-GB"
        )
        page.goto(args.ha)
        # The login form (Home Assistant's own page; Playwright's locators see through
        # its shadow DOM).
        page.locator("input[name=username]").fill(USERNAME)
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("input[name=password]").press("Enter")
        page.wait_for_url("**/lovelace/**", timeout=60_000)
        page.locator("hui-thermostat-card").wait_for(timeout=60_000)
        # The history graphs draw once their data has arrived.
        page.locator("hui-history-graph-card ha-chart-base").first.wait_for(timeout=60_000)
        page.wait_for_timeout(3_000)  # let the charts' entry animation finish
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"[screenshot] {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
