"""Shared widgets, headless: changing a control updates the figure data."""

from __future__ import annotations

import threading
import time

import matplotlib.pyplot as plt
import numpy as np
import pytest

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.viz import Curve, heatmap_comparison_figure, shared_scale
from wslbench.widgets import (
    HeatmapComparisonPanel,
    MetricsPanel,
    ParameterPanel,
    VolumeViewer,
    make_control,
)


def _image_and_maps(size: int = 16):
    rng = np.random.default_rng(0)
    image = rng.random((size, size, 3))
    ramp = np.linspace(0, 1, size * size).reshape(size, size)
    return image, {"pi0": ramp, "pi sparse": 2 * ramp}


def test_heatmap_panel_sliders_redraw_with_shared_scale():
    image, maps = _image_and_maps()
    panel = HeatmapComparisonPanel(image, maps, opacity=0.5)
    first_png = panel.image_widget.value
    overlays = [ax.images[-1] for ax in panel.figure.axes[1:3]]
    assert [o.get_alpha() for o in overlays] == [0.5, 0.5]
    assert all(o.get_clim() == (0.0, 2.0) for o in overlays), "one colour scale for every map"
    panel.opacity.value = 0.9
    assert [ax.images[-1].get_alpha() for ax in panel.figure.axes[1:3]] == [0.9, 0.9]
    assert panel.image_widget.value != first_png
    panel.threshold.value = 0.5
    shown = panel.figure.axes[1].images[-1].get_array()
    assert np.ma.is_masked(shown) and shown.mask.sum() == (maps["pi0"] < 1.0).sum()


def test_heatmap_panel_update_keeps_sliders_and_checks_shapes():
    image, maps = _image_and_maps()
    panel = HeatmapComparisonPanel(image, maps)
    panel.opacity.value = 0.3
    panel.update(heatmaps={"only": np.ones((16, 16))})
    assert len(panel.figure.axes) == 3  # image, one map, colour bar
    assert panel.figure.axes[1].images[-1].get_alpha() == 0.3
    with pytest.raises(InvalidInputError, match="expected the image size"):
        panel.update(heatmaps={"bad": np.ones((8, 8))})
    with pytest.raises(InvalidInputError, match="NaN"):
        heatmap_comparison_figure(image, {"nan": np.full((16, 16), np.nan)})


def test_shared_scale_is_symmetric_for_signed_maps():
    assert shared_scale({"a": np.array([[-1.0, 0.5]]), "b": np.array([[3.0]])}) == (-3.0, 3.0)
    assert shared_scale({"a": np.array([[0.0, 2.0]])}) == (0.0, 2.0)


def test_volume_viewer_slice_sliders_move_the_slices():
    vol = np.arange(6 * 7 * 8, dtype=float).reshape(6, 7, 8)
    overlay = (vol > vol.mean()).astype(float)
    viewer = VolumeViewer(vol, overlay)
    assert viewer.index == (3, 3, 4)
    sagittal = viewer.figure.axes[0].images[0].get_array().copy()
    np.testing.assert_array_equal(sagittal, np.rot90(vol[3]))
    viewer.sliders[0].value = 5
    np.testing.assert_array_equal(viewer.figure.axes[0].images[0].get_array(), np.rot90(vol[5]))
    assert len(viewer.figure.axes[0].images) == 2, "overlay drawn on top"
    viewer.update(volume=np.zeros((4, 4, 4)), overlay=np.zeros((4, 4, 4)))
    assert [s.max for s in viewer.sliders] == [3, 3, 3] and viewer.index == (2, 2, 2)
    with pytest.raises(InvalidInputError, match="overlay has shape"):
        VolumeViewer(vol, np.zeros((2, 2, 2)))


def test_metrics_panel_dropdown_switches_curves():
    roc = [Curve([0, 0.2, 1], [0, 0.8, 1], "net A")]
    froc = [Curve([0, 1, 10], [0, 0.4, 0.7], "MA"), Curve([0, 2, 10], [0, 0.5, 0.9], "HE")]
    panel = MetricsPanel({"roc": roc, "froc": froc}, summary={"roc": "AUC 0.90"})
    assert [t.name for t in panel.figure.data] == ["net A", "chance"]
    assert panel.note.value == "AUC 0.90"
    panel.kind.value = "froc"
    assert [t.name for t in panel.figure.data] == ["MA", "HE"]
    assert panel.figure.layout.xaxis.title.text == "false positives per image"
    panel.set_curves("pr", [Curve([0, 1], [1, 0.5], "gap")])
    assert panel.kind.value == "pr" and panel.figure.data[0].name == "gap"
    with pytest.raises(InvalidInputError, match="unknown curve kind"):
        panel.set_curves("dice", roc)


def test_make_control_specs():
    assert type(make_control("k", (1, 9, 2))).__name__ == "IntSlider"
    assert make_control("lr", (0.0, 1.0, 0.1, 0.5)).value == 0.5
    nu = make_control("nu", [0.0, 1e-4, 1e-3])
    assert type(nu).__name__ == "SelectionSlider" and nu.value == 0.0
    assert make_control("head", ["gap", "lse"]).value == "gap"
    assert make_control("tta", True).value is True
    with pytest.raises(ConfigError, match="cannot build a widget"):
        make_control("bad", {"a": 1})


def test_parameter_panel_synchronous_runs_with_latest_values():
    seen = []

    def work(params, progress):
        for step in range(1, 4):
            progress(step, 3, {"loss": 1.0 / step})
        seen.append(params)
        return params["nu"] * 2

    panel = ParameterPanel({"nu": [0.0, 1e-3], "head": ["gap", "lse"]}, work, threaded=False)
    panel.controls["nu"].value = 1e-3
    assert panel.result == 2e-3 and seen[-1] == {"nu": 1e-3, "head": "gap"}
    assert panel.progress.value == 3 and panel.status.value.startswith("done")
    panel.controls["head"].value = "lse"
    assert seen[-1]["head"] == "lse" and panel.runs == 2


def test_parameter_panel_shows_errors_without_traceback():
    def work(params, progress):
        raise ConfigError("nu must be >= 0")

    panel = ParameterPanel({"nu": [0.0, 1.0]}, work, threaded=False)
    panel.run_now()
    assert "nu must be &gt;= 0" in panel.status.value
    assert "Traceback" not in panel.status.value and panel.error == "nu must be >= 0"


@pytest.mark.parametrize("error", [ConfigError("<img src=x onerror=alert(1)>"),
                                   RuntimeError("<script>alert(1)</script>")])
def test_parameter_panel_escapes_error_text(error):
    def work(params, progress):
        raise error

    panel = ParameterPanel({"nu": [0.0, 1.0]}, work, threaded=False)
    panel.run_now()
    assert "<img" not in panel.status.value and "<script" not in panel.status.value
    assert "&lt;" in panel.status.value


def test_parameter_panel_debounces_and_cancels_in_a_thread():
    started = threading.Event()
    calls = []

    def work(params, progress):
        calls.append(params["n"])
        started.set()
        for step in range(200):
            progress(step, 200, {})
            time.sleep(0.01)
        return params["n"]

    panel = ParameterPanel({"n": (0, 10, 1)}, work, debounce_s=0.1)
    for value in (1, 2, 3):  # three quick moves: one run with the last value
        panel.controls["n"].value = value
    assert started.wait(5.0)
    panel.cancel()
    panel.wait(10.0)
    assert calls == [3] and panel.status.value == "cancelled" and panel.result is None
    panel.controls["n"].value = 4
    time.sleep(0.3)
    panel.controls["n"].value = 5  # cancels the running one, runs again with 5
    panel.wait(10.0)
    assert calls[-1] == 5 and panel.result == 5



def test_heatmap_panel_policy_rescales_each_map():
    image, maps = _image_and_maps()
    panel = HeatmapComparisonPanel(image, maps)
    assert panel.figure.axes[2].images[-1].get_array().max() == 2.0
    panel.policy.value = "abs-max"
    assert [ax.images[-1].get_array().max() for ax in panel.figure.axes[1:3]] == [1.0, 1.0]



def test_case_viewer_dropdown_swaps_case_and_maps():
    from wslbench.widgets import synthetic_case_viewer

    viewer = synthetic_case_viewer(size=64, n_cases=4)
    assert [ax.get_title() for ax in viewer.panel.figure.axes[:2]] == ["image", "no lesion"]
    viewer.controls.value = 3  # grade 3: hemorrhages in three quadrants
    titles = [ax.get_title() for ax in viewer.panel.figure.axes]
    assert "hemorrhage" in titles and "no lesion" not in titles


def test_explorers_train_nothing_until_asked(monkeypatch):
    """Building an explorer (as a papermill run does) trains nothing; Run trains once."""
    from dataclasses import replace

    from wslbench.experiments import dr, wsl
    from wslbench.widgets import lambda_explorer, nu_explorer

    config = dr.dr_config("smoke", iterations=4, checkpoint_every=2, table_nus=(0.0,))
    data = dr.make_dr_data(config)
    calls = []
    real = dr.train_dr_cached
    monkeypatch.setattr(dr, "train_dr_cached", lambda c, d, **kw: calls.append(c.nu) or real(c, d, **kw))
    explorer = nu_explorer(config, data, nus=[1e-3], threaded=False)
    assert calls == [] and "press Run" in explorer.note.value
    explorer.controls.run_now()
    assert calls == [0.0, 1e-3] and explorer.note.value == "ν = 0.001"
    assert len(explorer.panel.figure.axes) >= 4  # image, π₀, π, truth

    wconfig = wsl.wsl_config("smoke", epochs=1, size_loss="kl")
    wdata = wsl.make_wsl_data(wconfig)
    trained = []
    wreal = wsl.train_wsl_cached
    monkeypatch.setattr(wsl, "train_wsl_cached",
                        lambda c, d, **kw: trained.append(c.lambda_s) or wreal(c, d, **kw))
    wexplorer = lambda_explorer(replace(wconfig), wdata, lambdas=[1.0], threaded=False)
    assert trained == []
    wexplorer.controls.run_now()
    assert trained == [1.0] and "Dice" in wexplorer.note.value


def test_overlay_of_a_zero_map_leaves_the_photograph_unchanged():
    """Quellec 2017 Fig. 4 reading aid: heat fades to transparent at the map's zero, so a
    zero map drawn at full opacity shows the photograph pixel for pixel."""
    image, _ = _image_and_maps(32)
    zero = {"zero": np.zeros((32, 32))}

    def pixels(opacity: float) -> np.ndarray:
        return panel_pixels(heatmap_comparison_figure(image, zero, opacity=opacity, scale=(0.0, 1.0)))

    def panel_pixels(fig) -> np.ndarray:  # the overlay panel only (the colour bar shows opacity)
        fig.canvas.draw()
        box = fig.axes[1].get_window_extent()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        top = rgba.shape[0] - int(box.y1)
        out = rgba[top:top + int(box.height), int(box.x0):int(box.x0) + int(box.width)].copy()
        plt.close(fig)
        return out

    assert np.array_equal(pixels(1.0), pixels(0.0))  # full heat opacity vs no overlay at all
    heat = heatmap_comparison_figure(image, {"ones": np.ones((32, 32))}, opacity=1.0, scale=(0.0, 1.0))
    assert not np.array_equal(panel_pixels(heat), pixels(0.0))  # while heat shows


def test_overlay_colour_maps_fade_at_zero_and_follow_the_sign():
    from wslbench.viz.heatmaps import DIVERGING_CMAP, SEQUENTIAL_CMAP, overlay_cmap

    sequential, diverging = overlay_cmap("auto", signed=False), overlay_cmap("auto", signed=True)
    assert sequential.name.startswith(SEQUENTIAL_CMAP) and diverging.name.startswith(DIVERGING_CMAP)
    assert sequential(0.0)[3] == 0.0 and sequential(1.0)[3] == 1.0
    assert diverging(0.5)[3] < 0.02 and diverging(0.0)[3] == 1.0 and diverging(1.0)[3] == 1.0
    image, maps = _image_and_maps()
    signed = heatmap_comparison_figure(image, {"lrp": maps["pi0"] - 0.5}, outlines=maps["pi0"] > 0.5)
    assert signed.axes[1].images[-1].cmap.name.startswith(DIVERGING_CMAP)
    assert signed.axes[1].collections, "the truth outline is drawn"
    with pytest.raises(InvalidInputError, match="unknown colour map"):
        overlay_cmap("not-a-map", signed=False)
    plt.close(signed)
