"""The dashboard in a real browser, through the ingress proxy stand-in.

Run by tests/addon/test_dashboard.py in Playwright's own venv (scripts/test-addon makes
it; the browser is Debian's chromium). Exits 0 when every check held; otherwise prints
what did not and leaves a screenshot of the moment.

    python browser_check.py URL --download-url U --download-name N --shot PNG

Checks, in order: the chart draws, a job's progress moves, a chat answer streams in, a
download shows part-way progress (the screenshot), its model is listed, Cancel stops
the job.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from playwright.sync_api import Error, Page, sync_playwright

# Run as a file by Playwright's own venv: the repository root makes `scripts` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scripts.headless_chromium import launch

TIMEOUT_MS = 90_000


def wait(page: Page, what: str, expression: str, arg: object = None) -> object:
    print(f"[browser] waiting: {what}", file=sys.stderr)
    return page.wait_for_function(expression, arg=arg, timeout=TIMEOUT_MS).json_value()


def check(page: Page, args: argparse.Namespace) -> None:
    page.goto(args.url)
    # The chart draws the node's own samples (at least two points to make a line).
    wait(page, "chart", "Number(document.getElementById('chart').dataset.points || 0) >= 2")

    # A job's progress moves while the page watches.
    first = wait(
        page,
        "a job row",
        "(() => { const b = document.querySelector('#job-rows progress');"
        " return b ? Number(b.dataset.done) + 1 : false; })()",
    )
    # A chat answer streams in: several reads of the response, text growing.
    page.fill("#chat-input", "Why does a computer heat a room?")
    page.click("#chat-form button")
    wait(page, "chat answer", "document.querySelector('.msg.assistant[data-done]') !== null")
    reads = page.eval_on_selector(".msg.assistant", "e => Number(e.dataset.reads)")
    text = page.inner_text(".msg.assistant")
    if reads < 2 or not text.strip():
        raise AssertionError(f"chat answer did not stream: {reads} reads, text {text!r}")
    moved = wait(
        page,
        "job progress to move",
        "(first) => { const b = document.querySelector('#job-rows progress');"
        " return b && Number(b.dataset.done) + 1 > first ? Number(b.dataset.done) : false; }",
        first,
    )
    print(f"[browser] job progressed from {int(str(first)) - 1} to {moved}", file=sys.stderr)
    # A download shows its progress: part-way there, then the model is listed.
    page.fill("#download-url", args.download_url)
    page.fill("#download-name", args.download_name)
    page.click("#download-form button")
    partway = wait(
        page,
        "download progress",
        "(() => { const b = document.querySelector('progress.download');"
        " return b && b.value > 0 && b.value < 1 ? b.value : false; })()",
    )
    print(f"[browser] download at {partway}", file=sys.stderr)

    page.screenshot(path=str(args.shot), full_page=True)
    wait(
        page,
        "downloaded model listed",
        "(name) => [...document.querySelectorAll('#model-list li')].some(li =>"
        " li.id === 'model-' + name && li.querySelector('.kind').textContent !== 'download')",
        args.download_name.removesuffix(".gguf"),
    )
    # Cancel stops the job; the row says so and offers no second cancel.
    page.click("#job-rows button")
    wait(
        page,
        "job cancelled",
        "(() => { const s = document.querySelector('#job-rows .state');"
        " return s && s.textContent === 'cancelled'"
        " && !document.querySelector('#job-rows button'); })()",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--download-url", required=True)
    parser.add_argument("--download-name", required=True)
    parser.add_argument("--shot", type=Path, required=True)
    parser.add_argument(
        "--failure-shot", type=Path, default=Path("build/addon-dashboard.failed.png")
    )
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: print(f"[console] {msg.text}", file=sys.stderr))
        try:
            check(page, args)
        except (Error, AssertionError) as err:
            page.screenshot(path=str(args.failure_shot), full_page=True)
            print(f"[browser] FAILED: {err}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    print("[browser] all checks held", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
