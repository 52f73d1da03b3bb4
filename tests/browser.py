"""Browser-test harness: Voila on a free 127.0.0.1 port, Debian Chromium through Playwright.

Used through the ``dashboard`` fixture of ``conftest.py``::

    def test_x(dashboard):
        page = dashboard.open("heatmap_viewer")      # waits until widgets render
        dashboard.move_slider("opacity", steps=4)
        dashboard.screenshot("after-opacity")

Voila runs with tracebacks shown (a failing cell is visible in the page body,
which :meth:`Dashboard.open` checks), kernels are culled, and the server is
stopped with SIGTERM (DESIGN §7–8). Never ``playwright install``: the Debian
browser at ``/usr/bin/chromium`` is used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wslbench.runner.voila import find_free_port, voila_argv

#: Where the Voila servers of the tests write their logs.
LOGS = Path(__file__).resolve().parents[1] / "test-artifacts" / "voila"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
PAGE_ERRORS = ("Traceback", "non-existing kernel", "timed out", "Error starting kernel")


@contextmanager
def voila_server(
    root: Path, *, startup_s: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve ``root`` with Voila (tracebacks shown); yields the base URL.

    ``env`` is added to the server's (and so its kernels') environment, e.g.
    ``WSLBENCH_DASHBOARD_PRESET=smoke``.
    """
    port = find_free_port()
    argv = voila_argv(root, port=port, show_tracebacks=True, cull_idle_s=900)
    # kernels are culled only after 15 idle minutes: with a shorter limit a kernel whose page
    # is still rendering under load was culled mid-page ("Kernel died", stop 15)
    # Voila's log goes to a file: an unread pipe fills up (64 KiB) after a few dozen kernel
    # starts and then blocks the server, which hangs every later page load
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"voila-{root.name}-{port}.log"
    log = log_path.open("w", encoding="utf-8")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited early:\n{log_path.read_text(encoding='utf-8')}")
            try:
                with urllib.request.urlopen(url + "/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("voila did not answer within the start-up time") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Dashboard:
    """One Chromium page on a Voila server, with helpers for widget interaction."""

    def __init__(self, browser, base_url: str, artifacts: Path) -> None:  # noqa: ANN001
        self.base_url = base_url
        self.artifacts = artifacts
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        # one limit for every action and wait: a loaded 2-core machine can take tens of seconds
        self.page.set_default_timeout(120_000)

    def open(self, notebook: str, *, timeout_s: float = 300.0, query: str = ""):  # noqa: ANN201
        """Load ``notebook`` (stem) and wait until its widgets and a visible image render.

        Voila streams the page while the kernel executes the notebook, so the wait is on
        the widgets themselves (generous: a loaded 2-core machine starts kernels slowly;
        later cells' widgets are waited for by the helpers, up to 120 s each).
        """
        url = f"{self.base_url}/voila/render/{notebook}.ipynb{query}"
        self.page.goto(url, timeout=timeout_s * 1000, wait_until="commit")
        self.page.wait_for_selector(".widget-slider, .widget-dropdown", timeout=timeout_s * 1000)
        self.page.wait_for_selector("img:visible", timeout=timeout_s * 1000)
        body = self.page.inner_text("body")
        for marker in PAGE_ERRORS:
            if marker in body:
                raise AssertionError(f"dashboard {notebook} shows {marker!r}:\n{body[:3000]}")
        return self.page

    def visible_image(self, index: int = 0) -> str:
        """The ``src`` (data URL or blob) of the ``index``-th visible image."""
        return self.page.locator("img:visible").nth(index).get_attribute("src") or ""

    def move_slider(self, label: str, steps: int = 3) -> None:
        """Focus the slider whose description is ``label`` and press the right arrow ``steps`` times."""
        slider = self.page.locator(".widget-slider", has=self.page.locator(f"label:text-is('{label}')"))
        handle = slider.locator(".noUi-handle").first
        handle.wait_for(state="visible", timeout=120_000)
        handle.click()
        for _ in range(steps):
            handle.press("ArrowRight")

    def select(self, label: str, option: str) -> None:
        """Pick ``option`` in the dropdown whose description is ``label`` (waiting up to 120 s
        for it to be enabled: dashboards disable their inputs while they work)."""
        dropdown = self.page.locator(".widget-dropdown", has=self.page.locator(f"label:text-is('{label}')"))
        dropdown.locator("select").select_option(label=option, timeout=120_000)

    def wait_for_change(
        self, before: str, index: int = 0, timeout_s: float = 30.0, settle_s: float = 0.8
    ) -> str:
        """Wait until the ``index``-th visible image differs from ``before`` and then stays the
        same for ``settle_s`` (one user action may redraw several times); returns its src."""
        deadline = time.monotonic() + timeout_s
        last, since = before, time.monotonic()
        while time.monotonic() < deadline:
            now = self.visible_image(index)
            if now != last:
                last, since = now, time.monotonic()
            elif last and last != before and time.monotonic() - since >= settle_s:
                return last
            self.page.wait_for_timeout(100)
        raise AssertionError("the rendered image did not change (or never settled)")

    def upload(self, path: str | Path, selector: str = ".widget-upload") -> None:
        """Click the FileUpload button ``selector`` and choose ``path`` in the file chooser
        (ipywidgets 8 creates its ``<input type=file>`` outside the page's DOM)."""
        with self.page.expect_file_chooser() as chooser:
            self.page.locator(selector).first.click()
        chooser.value.set_files(str(path))

    def wait_for_text(self, selector: str, text: str, timeout_s: float = 60.0) -> str:
        """Wait until the element ``selector`` contains ``text``; returns its text."""
        locator = self.page.locator(selector).filter(has_text=text).first
        locator.wait_for(timeout=timeout_s * 1000)
        return locator.inner_text()

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under the test's artifacts folder."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def save_failure_state(self) -> None:
        """Screenshot and page text of a failed test (best effort: the page may be gone)."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        try:
            self.page.screenshot(path=str(self.artifacts / "failure.png"), full_page=True, timeout=30_000)
            (self.artifacts / "failure.txt").write_text(self.page.inner_text("body", timeout=30_000),
                                                        encoding="utf-8")
        except Exception as error:  # noqa: BLE001 - the test has already failed; keep its own error
            (self.artifacts / "failure.txt").write_text(f"page state not saved: {error}", encoding="utf-8")

    def close(self) -> None:
        self.context.close()
