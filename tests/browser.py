"""A built site in Debian's chromium, driven by Playwright: served over HTTP on
127.0.0.1, each page opened at a width, with what went wrong on it collected (console
errors, uncaught exceptions, dialogs, requests that left the machine)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

# Screenshots of every page a test opens, kept for a person (and CI) to look at.
ARTIFACTS = ROOT / "test-artifacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    return found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Visit:
    page: Any  # playwright.sync_api.Page
    problems: list[str] = field(default_factory=list)

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)


class Site:
    def __init__(self, browser: Any, base: str) -> None:
        self._browser, self.base = browser, base

    @contextmanager
    def visit(
        self, path: str, width: int, shot: str | None = None, scheme: str = "light"
    ) -> Iterator[Visit]:
        """`path` of the site at `width` CSS pixels, for a reader who prefers the `scheme`
        (light, dark); `shot`: a name for its screenshot."""
        context = self._browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme
        )
        page = context.new_page()
        visit = Visit(page)
        page.on(
            "console",
            lambda m: (
                visit.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: visit.problems.append(f"page error: {error}"))

        def dialog(d: Any) -> None:
            visit.problems.append(f"dialog: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)

        def route(r: Any) -> None:
            if r.request.url.startswith(self.base):
                r.continue_()
            else:
                visit.problems.append(f"request off the machine: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        try:
            page.goto(f"{self.base}/{path}", wait_until="load")
            page.wait_for_load_state("networkidle")
            yield visit
            if shot:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"{shot}-{width}.png"), full_page=True)
        finally:
            context.close()


@contextmanager
def served(folder: Path) -> Iterator[Site]:
    """The site in `folder`, served on 127.0.0.1, and a headless chromium to open it."""
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=chromium(),
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run"],
            )  # fmt: skip
            try:
                yield Site(browser, f"http://127.0.0.1:{server.server_address[1]}")
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
