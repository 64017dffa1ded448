"""Log in to the dev instance as a new user would and photograph the dashboard, or
(`--page repair`) Settings → Repairs with the model repair's dialog open after one click.

Run by scripts/screenshot (its own venv with Playwright; the browser is Debian's
chromium, headless, with the flags that work on a machine without a display or GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from playwright.sync_api import Page, sync_playwright

# Run as a file by Playwright's own venv: the repository root makes `scripts` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.headless_chromium import launch

USERNAME, PASSWORD = "dev", "heatcompute"
PAGES = {"dashboard": Path("docs/dashboard.png"), "repair": Path("docs/repair_model.png")}


def dashboard(page: Page) -> None:
    page.locator("hui-thermostat-card").wait_for(timeout=60_000)
    # The history graphs draw once their data has arrived.
    page.locator("hui-history-graph-card ha-chart-base").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3_000)  # let the charts' entry animation finish


def repair(page: Page, ha: str) -> None:
    """The first of the two clicks: the issue, whose dialog then offers Submit."""
    page.goto(f"{ha}/config/repairs")
    issue = page.get_by_text("cannot act on its model")
    issue.wait_for(timeout=60_000)
    issue.click()
    page.get_by_text("Submit").wait_for(timeout=30_000)
    page.wait_for_timeout(1_000)  # the dialog's opening animation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ha", default="http://127.0.0.1:8123")
    parser.add_argument("--page", choices=sorted(PAGES), default="dashboard")
    parser.add_argument("--out", type=Path, help="default: docs/<the page's picture>.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    out: Path = args.out or PAGES[args.page]
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
        if args.page == "repair":
            repair(page, args.ha)
        else:
            dashboard(page)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()
    print(f"[screenshot] {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
