"""Browser test of the harness on the case-viewer dashboard (Voila + Debian Chromium)."""

from __future__ import annotations

import pytest

# One xdist group with the notebook regression tests: the heavy kernels run one at a time.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("kernels")]


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


def test_widget_gallery_volume_metrics_and_parameter_panel(gallery):
    page = gallery.open("widget_gallery")
    first = gallery.visible_image()
    gallery.move_slider("sagittal", steps=5)
    after_slice = gallery.wait_for_change(first)
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    assert "AUC 0.86" in page.inner_text("body")
    gallery.select("curves", "froc")
    page.wait_for_selector("text=area 0.62", timeout=30_000)
    page.wait_for_selector(".js-plotly-plot >> text=false positives per image", timeout=30_000)
    # one plot once the change settles (the output is redrawn; under load the old plot can
    # linger for a moment next to the new one)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 1",
                           timeout=60_000)
    gallery.move_slider("sigma", steps=10)  # auto_run is off: nothing runs until Run
    page.get_by_role("button", name="Run").click()
    page.wait_for_selector("text=/done in/", timeout=30_000)
    gallery.wait_for_change(after_slice)
    gallery.screenshot("gallery")
