"""The notebooks' interactive explorers, built lazily (issue 18).

Constructing an explorer trains nothing: it shows the image and the truth and
waits for the user, so a headless papermill run of a notebook never trains an
extra model for a widget nobody will touch. Training (or a cache hit) happens
when a slider moves or the Run button is pressed, with a progress bar and a
cancel button (:class:`~wslbench.widgets.ParameterPanel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from wslbench.errors import InvalidInputError
from wslbench.progress import ProgressCallback, stop_if_interrupted
from wslbench.widgets.heatmap_panel import HeatmapComparisonPanel
from wslbench.widgets.parameter_panel import ParameterPanel

__all__ = ["Explorer", "nu_explorer", "lambda_explorer", "detection_explorer",
           "synthetic_case_viewer"]

@dataclass(frozen=True)
class Explorer:
    """An explorer's parts: its ``controls`` (a :class:`ParameterPanel` or a dropdown), the
    heatmap ``panel`` or image, a ``note`` line and the assembled ``widget``."""

    widget: object
    controls: object
    panel: object
    note: object | None = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


_WAITING = "<i>Move the slider or press Run to train (or load) this model.</i>"


def nu_explorer(config: object, data: object, *, case: int = 0,
                nus: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2), threaded: bool = True) -> Explorer:
    """The ν slider of notebook 01 (Quellec 2017, eq. 6): π₀ next to the sparsity-enhanced π
    of one test case; each ν trains once (then comes from the experiment cache).

    Returns an :class:`Explorer` (displays as its widget).
    """
    import ipywidgets as widgets

    from wslbench.experiments import dr

    split = dr.fit_input_size(data.test, config.input_size)
    if not 0 <= case < len(split):
        raise InvalidInputError(f"case must be in [0, {len(split)}), got {case}")
    x = split.images[case:case + 1]
    truth = split.masks[case].any(0).float()
    note = widgets.HTML(_WAITING)
    panel = HeatmapComparisonPanel(split.raw[case], {"lesions (truth)": truth})

    def maps_for(nu: float, progress: ProgressCallback | None) -> torch.Tensor:
        run = dr.train_dr_cached(replace(config, nu=float(nu)), data, progress=progress)
        stop_if_interrupted(run, f"training nu = {nu:g}")
        return dr.dr_heatmaps(run.model, x, config.criterion, q=config.q)[0, 0]

    def work(params: dict[str, object], progress: ProgressCallback) -> None:
        nu = float(params["nu"])  # type: ignore[arg-type]
        panel.update(heatmaps={"π₀ (ν = 0)": maps_for(0.0, progress),
                               f"π (ν = {nu:g})": maps_for(nu, progress),
                               "lesions (truth)": truth})
        note.value = f"ν = {nu:g}"

    controls = ParameterPanel({"nu": [float(v) for v in nus]}, work, threaded=threaded)
    return Explorer(widgets.VBox([controls.widget, note, panel.widget]), controls, panel, note)


def lambda_explorer(config: object, data: object, *, index: int = 0,
                    lambdas: Sequence[float] = (0.3, 1.0, 3.0, 10.0),
                    threaded: bool = True) -> Explorer:
    """The λ_s slider of notebook 02 (Rony 2020, eq. 4.13): the size-supervised model's CAM
    next to the ground truth, with its test accuracy and Dice.

    Returns an :class:`Explorer` (displays as its widget).
    """
    import ipywidgets as widgets

    from wslbench.experiments import wsl

    test = torch.as_tensor(data.folds[0].test)
    if not 0 <= index < len(test):
        raise InvalidInputError(f"index must be in [0, {len(test)}), got {index}")
    sized = config if config.size_loss != "none" else replace(config, size_loss="adaptive")
    note = widgets.HTML(_WAITING)
    panel = HeatmapComparisonPanel(data.images[test[index]],
                                   {"ground truth": data.masks[test[index]].float()})

    def work(params: dict[str, object], progress: ProgressCallback) -> None:
        lam = float(params["lambda_s"])  # type: ignore[arg-type]
        run = wsl.train_wsl_cached(replace(sized, lambda_s=lam), data, progress=progress)
        stop_if_interrupted(run, f"training lambda_s = {lam:g}")
        m = wsl.evaluate_wsl(run.model, data, run.config)
        note.value = (f"λ_s = {lam:g}: test accuracy {100 * m['accuracy']:.1f} %, "
                      f"Dice {100 * m['dice']:.1f} %")
        panel.update(heatmaps=wsl.cam_gallery({f"{sized.size_loss} (λ_s = {lam:g})": run}, data, index))

    controls = ParameterPanel({"lambda_s": [float(v) for v in lambdas]}, work,
                              threaded=threaded)
    return Explorer(widgets.VBox([controls.widget, note, panel.widget]), controls, panel, note)


def detection_explorer(run: object, data: object, *, index: int = 0,
                       lambdas: Sequence[float] | None = None,
                       bandwidths: Sequence[float] | None = None) -> Explorer:
    """Sliders for λ and the mean-shift bandwidth (Xue et al. 3.2, 4.2) that re-decode the
    CNN codes of the test patches (computed once, no training) and redraw patch ``index``
    with the test P/R/F1.

    Returns an :class:`Explorer` (displays as its widget).
    """
    import ipywidgets as widgets

    from wslbench.experiments import cnncs
    from wslbench.viz.cells import detection_figure
    from wslbench.widgets._render import show_figure

    if not 0 <= index < len(data.test_patches):
        raise InvalidInputError(f"index must be in [0, {len(data.test_patches)}), got {index}")
    c = run.config
    dense = cnncs.predict_codes(run.model, data.test_patches)
    lambdas = list(lambdas or sorted({c.lam / 4, c.lam / 2, c.lam, 2 * c.lam, 4 * c.lam}))
    bandwidths = list(bandwidths or sorted({c.bandwidth / 2, c.bandwidth, 1.5 * c.bandwidth,
                                            2 * c.bandwidth}))
    image = widgets.Image(format="png")
    note = widgets.HTML()

    def draw(params: dict[str, object], progress: ProgressCallback | None = None) -> None:
        lam, bw = float(params["lam"]), float(params["bandwidth"])  # type: ignore[arg-type]
        decoded = cnncs.detect_cells(run.model, dense, lam=lam, threshold=c.threshold, bandwidth=bw,
                                      peak_radius=c.peak_radius)
        m = cnncs.evaluate_detections(decoded.centres, data.test_centroids, data.rho)
        note.value = (f"λ = {lam:g}, bandwidth = {bw:g} px: precision {m['precision']:.3f}, "
                      f"recall {m['recall']:.3f}, F1 {m['f1']:.3f} on {len(dense)} test patches")
        fig = detection_figure(data.test_patches[index], data.test_centroids[index],
                               decoded.centres[index], decoded.candidates[index])
        show_figure(fig, image)

    def slider(name: str, options: list[float], value: float) -> widgets.SelectionSlider:
        return widgets.SelectionSlider(options=[(f"{v:g}", v) for v in options],
                                       value=value if value in options else options[0],
                                       description=name, continuous_update=False)

    controls = ParameterPanel({"lam": slider("lam", lambdas, c.lam),
                               "bandwidth": slider("bandwidth", bandwidths, c.bandwidth)}, draw)
    draw(controls.values())  # decoding is cheap: the first view is drawn at once
    return Explorer(widgets.VBox([controls.widget, note, image]), controls, image, note)


def synthetic_case_viewer(*, size: int = 128, n_cases: int = 6, seed: int = 0) -> Explorer:
    """Synthetic fundus cases and their lesion masks, as heatmaps (a developer's page).

    A ``case`` dropdown picks one of ``n_cases`` cases (grades 0–4 in turn); the panel
    shows the photograph and one smoothed map per lesion type present.
    """
    import ipywidgets as widgets
    from scipy import ndimage as ndi

    from wslbench.data.synthetic_fundus import make_fundus_case

    if n_cases < 1:
        raise InvalidInputError(f"n_cases must be >= 1, got {n_cases}")
    cases = [make_fundus_case(seed + i, size, i % 5) for i in range(n_cases)]

    def maps_of(i: int) -> dict[str, np.ndarray]:
        masks = cases[i].masks
        shown = {k: ndi.gaussian_filter(m.astype(float), 1.0) for k, m in masks.items() if m.any()}
        return shown or {"no lesion": np.zeros((size, size))}

    labels = [(f"case {i + 1}: grade {c.grade}", i) for i, c in enumerate(cases)]
    picker = widgets.Dropdown(options=labels, value=0, description="case")
    panel = HeatmapComparisonPanel(cases[0].image, maps_of(0), opacity=0.6, threshold=0.1)
    picker.observe(lambda change: panel.update(cases[change["new"]].image, maps_of(change["new"])),
                   names="value")
    return Explorer(widgets.VBox([picker, panel.widget]), picker, panel)
