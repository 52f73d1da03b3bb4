"""Browser test of the harness on the case-viewer dashboard (Voila + Debian Chromium)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_case_viewer_slider_and_dropdown_redraw(dashboard):
    page = dashboard.open("case_viewer")
    assert "Synthetic fundus cases" in page.inner_text("body")
    assert "import" not in page.inner_text("body"), "Voila shows no code"
    first = dashboard.visible_image()
    dashboard.screenshot("loaded")
    dashboard.move_slider("opacity", steps=4)
    after_slider = dashboard.wait_for_change(first)
    dashboard.select("case", "case 4: grade 3")
    dashboard.wait_for_change(after_slider)
    dashboard.screenshot("after-interaction")
