"""Cell-counting dashboard: the cell count of a microscopy image, its detected cells marked.

The model is the CNN + compressed-sensing detector of notebook ``04_cnncs_cells``
(Xue et al.; ``models/cnncs.pt``, whatever variant the run trained). When the
dashboard trains its own, it takes the preset with the plain ``"cnncs"`` variant
(L2 loss, FISTA recovery at inference): the cheapest to train, and on the demo
budget as accurate as the end-to-end variants (``benchmarks/cnncs_table2.py``). A ResNet regresses the compressed
codes of each tile's cell positions on L observation lines, sparse recovery gives
â, and peaks, back-projection, voting and mean-shift give the centres (3.1, 4.3). Whole images
are tiled and the tiles' detections merged as in
:func:`wslbench.experiments.cnncs.detect_in_image`. The detector was trained on
synthetic H&E fields to find the mitosis-like *target* cells among look-alike
nuclei, so the count is of those cells, at the training magnification (nuclei of
about 10–16 px across).

* **Decision**: the cell count (and, for synthetic samples, the true count and how
  many true cells were found within the matching distance ρ of 4.2).
* **Explanation**: the decoder's support map — the back-projected points that
  passed the vote (Fig. 6, green crosses), smoothed with σ = bandwidth / 2 and
  scaled to [0, 1] — with a circle marker on each detected cell.
* **Findings**: the cells, best supported first, with their ``(row, col)`` centre
  and, as score, their support (voted candidates within the bandwidth); at most
  :data:`MAX_LISTED` are listed, all are counted and marked.
* **Threshold** slider: the peak threshold on the recovered â, a signed distance
  in pixels (Xue et al. 4.3: 15 px on 260-px patches; the demo preset 4 px on
  64-px patches), from :data:`MIN_THRESHOLD` to :data:`MAX_THRESHOLD`. The tiles' codes are computed once per
  image (:func:`~wslbench.experiments.cnncs.image_codes`); moving the slider only
  re-decodes them (:func:`~wslbench.experiments.cnncs.decode_image_codes`, no CNN
  run) and updates the count, the markers and the findings list. Opacity changes
  only the drawing.
* **Uploads**: PNG/TIFF, grey or colour (grey is replicated into three channels),
  at least the model's patch size per side; images larger than :data:`MAX_SIDE`
  pixels per side are centre-cropped to it (a note says so) to keep the tiled
  detection within seconds on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage as ndi
from torch import nn

from wslbench.dashboards.app import DashboardApp
from wslbench.dashboards.findings import Finding
from wslbench.dashboards.model_source import LoadedModel, ModelSpec
from wslbench.dashboards.overlay import Analysis, OverlayView, mark_findings
from wslbench.dashboards.uploads import MICROSCOPY_POLICY, UploadedFile, decode_image
from wslbench.data.synthetic_cells import CellImageConfig, make_cell_dataset
from wslbench.errors import InvalidInputError
from wslbench.experiments import cnncs
from wslbench.progress import ProgressCallback, report
from wslbench.viz.heatmaps import heatmap_comparison_figure

__all__ = ["SPEC", "MAX_SIDE", "CellInput", "CellView", "CellsModality", "analyse_cells",
           "redecode", "prepare_upload", "build_dashboard"]

#: Uploads larger than this (pixels per side) are centre-cropped to it.
MAX_SIDE = 512
#: Most cells listed in the findings list (all are counted and marked).
MAX_LISTED = 300
#: Smallest threshold the slider offers (the decoder needs a positive one).
MIN_THRESHOLD = 0.05
#: Largest threshold the slider offers (px: the paper's 15 px and room above it).
MAX_THRESHOLD = 40.0


def _train(config: cnncs.CNNCSConfig, progress: ProgressCallback | None) -> tuple[nn.Module, dict]:
    data = cnncs.make_cell_data(config)
    run = cnncs.train_cnncs(config, data, progress=progress)
    return run.model, cnncs.evaluate_cnncs(run, data)


def _estimate_s(config: cnncs.CNNCSConfig) -> float:
    """Rough 2-core time: about 0.25 s per Adam step of 32 patches of 64 px at width 16
    (ECNNCS-2, FISTA recovery in the loop; measured on a shared 2-core machine), plus data."""
    per_image = (config.image_size // config.patch_size) ** 2 * (4 if config.rotations else 1)
    steps = config.epochs * -(-config.n_train_images * per_image // config.batch_size)
    per_step = 0.25 * (config.batch_size / 32) * (config.patch_size / 64) ** 2 * (config.base_width / 16) ** 2
    data_s = 0.03 * (config.n_train_images + config.n_test_images) * (config.image_size / 192) ** 2
    return 15 + data_s + steps * per_step


SPEC = ModelSpec(
    key="cells", notebook="04_cnncs_cells", name="cnncs", description="CNNCS cell detector",
    metric="f1", metric_label="held-out F1 (synthetic test patches)",
    make_config=lambda preset: cnncs.cnncs_config(preset, variant="cnncs"),
    config_from_dict=lambda d: cnncs.cnncs_config("demo", **{**d, "device": "cpu"}),
    build=cnncs.build_cnncs, train=_train, estimate_s=_estimate_s,
)


@dataclass(frozen=True)
class CellInput:
    """An image ready for the detector: ``(H, W, 3)`` float32 in [0, 1], the true centres
    ``(k, 2)`` of a synthetic sample (``None`` otherwise) and notes on how it was prepared."""

    image: np.ndarray
    truth: np.ndarray | None = None
    notes: tuple[str, ...] = ()


def _centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def prepare_upload(image: np.ndarray, patch_size: int, *, name: str = "the image",
                   max_side: int = MAX_SIDE) -> CellInput:
    """A decoded upload (``(H, W)`` grey or ``(H, W, 3)``) as detector input.

    Raises:
        InvalidInputError: a side is shorter than the model's patch size.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    h, w = arr.shape[:2]
    if min(h, w) < patch_size:
        raise InvalidInputError(
            f"“{name}” is {w}×{h} pixels; the cell detector reads tiles of {patch_size}×{patch_size} "
            f"pixels, so expected {MICROSCOPY_POLICY.what} of at least {patch_size} pixels per side."
        )
    notes = []
    if max(h, w) > max_side:
        arr = _centre_crop(arr, max_side)
        notes.append(f"the upload is {w}×{h} pixels: its centre {arr.shape[1]}×{arr.shape[0]} "
                     f"crop was analysed (at most {max_side} pixels per side)")
    return CellInput(arr, None, tuple(notes))


def _support_map(candidates: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Voted candidates splatted on the image grid, smoothed, scaled to [0, 1]."""
    counts = np.zeros(shape, np.float64)
    if len(candidates):
        rows = np.clip(np.round(candidates[:, 0]).astype(int), 0, shape[0] - 1)
        cols = np.clip(np.round(candidates[:, 1]).astype(int), 0, shape[1] - 1)
        np.add.at(counts, (rows, cols), 1.0)
    smooth = ndi.gaussian_filter(counts, sigma)
    top = float(smooth.max())
    return (smooth / top if top > 0 else smooth).astype(np.float32)


def _fill(analysis: Analysis, detections: cnncs.ImageDetections) -> None:
    """Decision, scores, findings, overlay and title of ``analysis`` from ``detections``."""
    extra = analysis.extra
    codes: cnncs.ImageCodes = extra["codes"]  # type: ignore[assignment]
    truth = extra["truth"]
    count = len(detections.centres)
    # the decoder allows a centre on the far edge of a tile (pixel footprint): keep it on the image
    centres = np.clip(detections.centres, 0, np.array(codes.shape, float) - 1)
    order = sorted(range(count), key=lambda i: (-detections.support[i], *centres[i]))
    analysis.findings = [
        Finding("cell", f"cell {rank + 1}", float(detections.support[i]),
                (float(centres[i, 0]), float(centres[i, 1])))
        for rank, i in enumerate(order[:MAX_LISTED])]
    t = detections.threshold
    analysis.scores = {"cell_count": float(count), "threshold": t}
    if count:
        decision = (f"<b>Cell count: {count}</b> — target (mitosis-like) cells detected at "
                    f"threshold {t:.2f}")
    else:
        decision = (f"<b>Cell count: 0</b> — no cell detected at threshold {t:.2f} "
                    "(lower the threshold to see weaker candidates)")
    if truth is not None:
        rho = float(extra["rho"])  # type: ignore[arg-type]
        found = cnncs.evaluate_detections([detections.centres], [truth], rho)["recall"] * len(truth)
        analysis.scores.update(true_count=float(len(truth)), true_found=float(round(found)))
        decision += (f"; synthetic sample: true count {len(truth)}, {round(found)} of them found "
                     f"within ρ = {rho:g} px")
    if count > MAX_LISTED:
        decision += f" (the {MAX_LISTED} best supported are listed)"
    analysis.decision = decision
    analysis.overlay = _support_map(detections.candidates, codes.shape, codes.bandwidth / 2)
    analysis.overlay_title = f"decoder support, threshold {t:.2f}"
    extra["detections"] = detections


def analyse_cells(
    run: cnncs.CNNCSTraining,
    item: CellInput,
    *,
    threshold: float | None = None,
    rho: float | None = None,
    progress: ProgressCallback | None = None,
) -> Analysis:
    """Cell count, support map and cell list of one image.

    Args:
        run: the detector (``CNNCSTraining(model, config, [], 0.0)`` for a stored one).
        item: the image (at least the patch size per side) and, for synthetic samples,
            the true centres.
        threshold: peak threshold on â (default the run's).
        rho: matching distance for the true-count comparison (default the smallest
            synthetic target radius, 5 px).
        progress: called after the CNN codes and after decoding.

    Returns:
        :class:`~wslbench.dashboards.overlay.Analysis` with ``scores`` ``cell_count``,
        ``threshold`` (and ``true_count``, ``true_found``); ``extra`` keeps the tiles'
        codes for :func:`redecode`.
    """
    codes = cnncs.image_codes(run, item.image)
    report(progress, 1, 2)
    image = np.clip(np.asarray(item.image, np.float32), 0, 1)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    analysis = Analysis("", {}, [], image, np.zeros(codes.shape, np.float32), "", item.notes,
                        {"run": run, "codes": codes, "truth": item.truth,
                         "rho": CellImageConfig().target_radius[0] if rho is None else rho})
    redecode(analysis, run.config.threshold if threshold is None else threshold)
    report(progress, 2, 2)
    return analysis


def redecode(analysis: Analysis, threshold: float) -> bool:
    """Decode the cached codes of a cell ``analysis`` at ``threshold`` (no CNN run) and update
    it in place; ``False`` when it already was at that threshold."""
    current = analysis.extra.get("detections")
    threshold = max(float(threshold), MIN_THRESHOLD)
    if isinstance(current, cnncs.ImageDetections) and math.isclose(current.threshold, threshold):
        return False
    run: cnncs.CNNCSTraining = analysis.extra["run"]  # type: ignore[assignment]
    _fill(analysis, cnncs.decode_image_codes(run, analysis.extra["codes"], threshold=threshold))  # type: ignore[arg-type]
    return True


class CellView(OverlayView):
    """:class:`OverlayView` whose *threshold* is the decoder's peak threshold: a change
    re-decodes the cached codes (:func:`redecode`) and calls ``on_detections`` (the
    dashboard refreshes its count and findings list) before the redraw."""

    def __init__(self) -> None:
        super().__init__(cmap="auto", opacity=0.5, threshold=0.2)
        self.threshold.max, self.threshold.step = MAX_THRESHOLD, 0.5
        self.threshold.min = MIN_THRESHOLD
        self.on_detections: list[Callable[[], None]] = []

    def set_threshold_quietly(self, value: float) -> None:
        """Move the threshold slider without a redraw."""
        with self.debouncer.lock:
            self._quiet = True
            try:
                self.threshold.value = float(min(max(value, self.threshold.min), self.threshold.max))
            finally:
                self._quiet = False

    def render(self) -> None:
        with self.debouncer.lock:
            if self.analysis is not None and "codes" in self.analysis.extra:
                try:
                    changed = redecode(self.analysis, self.threshold.value)
                except Exception as exc:  # runs in a timer thread: report in the page
                    self.caption.value = f"could not decode at this threshold ({type(exc).__name__}: {exc})"
                    return
                if changed:
                    self.selected = None
                    for callback in self.on_detections:
                        callback()
            super().render()

    def figure(self, analysis: Analysis) -> Figure:
        """Image | image + support map (values under 5 % transparent), cells circled."""
        fig = heatmap_comparison_figure(
            analysis.image, {analysis.overlay_title: analysis.overlay}, opacity=self.opacity.value,
            threshold=0.05, cmap=self.cmap, scale=(0.0, 1.0), panel_size=4.2)
        for ax in fig.axes[:2]:
            mark_findings(ax, analysis.findings, self.selected)
        return fig


@lru_cache(maxsize=4)
def _samples(image_size: int, patch_size: int, target_mean: float, clutter_density: float
             ) -> dict[str, CellInput]:
    from skimage.transform import rescale

    from wslbench.data import load_skimage_cell, load_skimage_ihc

    size = min(MAX_SIDE, max(image_size, 2 * patch_size))
    config = CellImageConfig(size=size, target_mean=target_mean * (size / image_size) ** 2,
                             max_targets=max(12, int(4 * target_mean * (size / image_size) ** 2)),
                             clutter_density=clutter_density)
    ds = make_cell_dataset(3, config, seed=2024)
    samples = {f"synthetic field {i + 1} ({size} px, {len(ds.centroids[i])} target cells)":
               CellInput(np.moveaxis(ds.images[i], 0, -1).astype(np.float32), ds.centroids[i])
               for i in range(len(ds.centroids))}
    crop = max(256, patch_size)
    samples[f"scikit-image immunohistochemistry (real, {crop} px crop)"] = CellInput(
        _centre_crop(load_skimage_ihc(), crop))
    cell = rescale(load_skimage_cell(), 0.5, channel_axis=-1, anti_aliasing=True).astype(np.float32)
    samples[f"scikit-image phase-contrast cells (real, halved, {crop} px crop)"] = CellInput(
        _centre_crop(cell, crop), None, ("phase-contrast image halved so that its cells are nearer "
                                         "the training size; grey replicated into three channels",))
    return samples


class CellsModality:
    """The cell-counting dashboard's :class:`~wslbench.dashboards.app.Modality`."""

    key = "cells"
    title = "Cell counting — microscopy image"
    intro = ("Pick a sample or upload a microscopy image (PNG or TIFF, grey or colour, cells of "
             "about 10–16 pixels across). The CNN + compressed-sensing detector (Xue et al.) "
             "counts the target (mitosis-like) cells, marks each detected cell and shows where "
             "its observation lines agree (decoder support). The threshold slider re-decodes "
             "without running the network again. Research prototype: not a medical device.")
    spec = SPEC
    policy = MICROSCOPY_POLICY
    model_label = "model"

    def __init__(self) -> None:
        self.view: CellView | None = None
        self._tuned_for: object = None

    def make_view(self) -> CellView:
        self.view = CellView()
        return self.view

    def samples(self, loaded: LoadedModel) -> dict[str, Callable[[], Any]]:
        c = loaded.config
        items = _samples(c.image_size, c.patch_size, c.target_mean, c.clutter_density)
        return {label: (lambda item=item: item) for label, item in items.items()}

    def decode(self, upload: UploadedFile, loaded: LoadedModel) -> CellInput:
        return prepare_upload(decode_image(upload, MICROSCOPY_POLICY), loaded.config.patch_size,
                              name=upload.shown_name)

    def analyse(self, loaded: LoadedModel, image: CellInput,
                progress: ProgressCallback | None) -> Analysis:
        threshold = loaded.config.threshold
        if self.view is not None:
            if self._tuned_for is not loaded:  # a new model: start from its own threshold
                self.view.set_threshold_quietly(threshold)
                self._tuned_for = loaded
            threshold = self.view.threshold.value
        run = cnncs.CNNCSTraining(loaded.model, loaded.config, [], 0.0)
        return analyse_cells(run, image, threshold=threshold, progress=progress)


def _sync(app: DashboardApp) -> None:
    """After a re-decode: the count line and the findings list follow the new detections."""
    analysis = app.analysis
    if analysis is None or analysis is not app.view.analysis:
        return  # a new analysis is being shown; the app updates the lines itself
    notes = "".join(f"<br><small>{note}</small>" for note in analysis.notes)
    app.decision.value = (f"<div style='font-size:1.15em'>{analysis.decision}</div>"
                          f"<small>image: {app.source}</small>{notes}")
    app.findings.unobserve(app._on_finding, names="value")
    try:
        app.findings.options = [("(no finding selected)", -1)] + [
            (f"{i + 1}. {f.describe()}", i) for i, f in enumerate(analysis.findings)]
        app.findings.value = -1
    finally:
        app.findings.observe(app._on_finding, names="value")


def build_dashboard(*, threaded: bool = True) -> DashboardApp:
    """The cell-counting dashboard, started (model resolved in the background)."""
    app = DashboardApp(CellsModality(), threaded=threaded)
    app.view.on_detections.append(lambda: _sync(app))
    return app.start()
