"""The one way the book's browser checks start Chromium: the system's Chromium
(Playwright's own browser download is never used), headless, with the flags that keep it
offline.

Used by `tools/screenshot_book.py`, `tests/test_explore.py` and
`benchmarks/bench_explore.py`. Only the standard library is imported here; Playwright
is the caller's (`from playwright.sync_api import sync_playwright`):

    with sync_playwright() as p:
        browser = launch_chromium(p)
"""

from __future__ import annotations

import shutil
from pathlib import Path

CANDIDATES = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)
# no sandbox (containers run as root), no GPU, and nothing that calls home
OFFLINE_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
INSTALL_HINT = "apt-get update && apt-get install -y chromium"


def chromium_path() -> str | None:
    "The system's Chromium, or None when there is none."
    for p in CANDIDATES:
        if Path(p).exists():
            return p
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright, *extra_args: str):
    """A headless Chromium browser started by `playwright` (a `sync_playwright()`
    context) from the system's executable, with OFFLINE_ARGS and `extra_args`."""
    path = chromium_path()
    if path is None:
        raise FileNotFoundError(f"no Chromium found: {INSTALL_HINT}")
    return playwright.chromium.launch(
        executable_path=path, args=[*OFFLINE_ARGS, *extra_args]
    )
