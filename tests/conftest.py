"""Shared pytest setup: one torch thread per test worker, deterministic seeds, browser harness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WSLBENCH_THREADS", "1")
torch.set_num_threads(int(os.environ["WSLBENCH_THREADS"]))

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def _seed_and_isolate_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from seed 0 and outside any run folder."""
    monkeypatch.delenv("WSLBENCH_RUN_DIR", raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Voila server on ``notebooks/dashboards`` for the whole browser session.

    Its kernels train the dashboards' smoke models into a fresh cache and see an empty
    runs folder, so no user model or cache is touched. They keep to the suite's torch
    threads (``OMP_NUM_THREADS``): with torch's default of one thread per core, the cell
    dashboard's smoke training took 191 s instead of 21 s on a 2-core machine shared with
    other work (busy-waiting threads).
    """
    from tests.browser import voila_server

    base = tmp_path_factory.mktemp("dashboards")
    (base / "runs").mkdir()
    env = {"WSLBENCH_DASHBOARD_PRESET": "smoke", "WSLBENCH_CACHE_DIR": str(base / "cache"),
           "WSLBENCH_RUNS_DIR": str(base / "runs"),
           "OMP_NUM_THREADS": os.environ["WSLBENCH_THREADS"]}
    with voila_server(ROOT / "notebooks" / "dashboards", env=env) as url:
        yield url


@pytest.fixture(scope="session")
def voila_test_url() -> Iterator[str]:
    """A Voila server on ``tests/notebooks`` (the widget gallery)."""
    from tests.browser import voila_server

    with voila_server(ROOT / "tests" / "notebooks") as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Debian Chromium driven by Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian package chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _page_fixture(request: pytest.FixtureRequest, base_url: str, chromium: object) -> Iterator[object]:
    from tests.browser import Dashboard

    board = Dashboard(chromium, base_url, ARTIFACTS / "browser" / request.node.name)
    try:
        yield board
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            board.save_failure_state()
        board.close()


@pytest.fixture
def dashboard(request: pytest.FixtureRequest, voila_url: str, chromium: object) -> Iterator[object]:
    """A fresh page on the Voila server; screenshots go to ``test-artifacts/browser/<test>/``
    (on failure also ``failure.png`` and ``failure.txt``: the page text at that moment)."""
    yield from _page_fixture(request, voila_url, chromium)


@pytest.fixture
def gallery(request: pytest.FixtureRequest, voila_test_url: str, chromium: object) -> Iterator[object]:
    """Like ``dashboard``, on the test notebooks (widget gallery)."""
    yield from _page_fixture(request, voila_test_url, chromium)
