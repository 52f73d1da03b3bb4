"""MRI dashboard: AD probability, a session-level perturbation mask on orthogonal slices, ROIs.

The model is the 3D CNN of notebook ``05_mri_masks`` (Thibeau-Sutre et al. 2020,
2.2.2) on gray-matter maps in MNI space. The explanation is a session-level
meaningful-perturbation mask (2.3.4, eq. 2; λ × 100) optimised for the AD class
for a few iterations with a progress bar; the view shows ``1 − m`` (high where the
gray matter had to be removed to lose the AD decision) on sagittal, coronal and
axial slices with slice sliders. ROIs of the package's parcellation are ranked by
mask density ``mean_R (1 − m)`` (2.4, :func:`wslbench.metrics.mask_similarity.roi_vector`);
selecting one moves the slices to its centre and outlines it.

Uploads (``.nii`` / ``.nii.gz``) are resampled to the model grid through their
affines (trilinear, world coordinates); a volume that does not cover the MNI brain
or holds values outside a gray-matter map's range is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import ndimage as ndi
from torch import nn

from wslbench.attribution.meaningful_perturbation import MeaningfulPerturbation
from wslbench.dashboards.app import DashboardApp
from wslbench.dashboards.findings import Finding
from wslbench.dashboards.model_source import LoadedModel, ModelSpec
from wslbench.dashboards.overlay import Analysis, OverlayView
from wslbench.dashboards.uploads import MRI_POLICY, DecodedVolume, UploadedFile, decode_nifti
from wslbench.data.parcellation import Parcellation, default_parcellation
from wslbench.data.synthetic_mri import gm_template, make_synthetic_cohort, mni_grid
from wslbench.errors import InvalidInputError
from wslbench.experiments import mri
from wslbench.metrics.mask_similarity import roi_vector
from wslbench.models.mri import build_mri_cnn
from wslbench.progress import ProgressCallback
from wslbench.training.mri_training import predict_proba
from wslbench.viz.volume import AXIS_NAMES, orthogonal_slices, orthogonal_slices_figure

__all__ = ["SPEC", "MRIModality", "SliceView", "analyse_mri", "chance_warning", "to_model_grid", "build_dashboard"]

#: Mask iterations per preset of the model (a few seconds each on 2 cores).
MASK_ITERATIONS = {"smoke": 8, "demo": 15}


def _train(config: mri.MRIConfig, progress: ProgressCallback | None) -> tuple[nn.Module, dict]:
    data = mri.make_mri_data(config)
    run = mri.train_fold(config, data, 0, progress=progress)
    return run.model, mri.run_metrics(run)


def _estimate_s(config: mri.MRIConfig) -> float:
    """Rough 2-core time: about 0.08 s per session and epoch on the 3 mm grid."""
    sessions = config.n_subjects * config.sessions_per_subject
    scale = 8.0 if config.grid == "paper" else 1.0
    return 10 + sessions * 0.15 + config.epochs * sessions * 0.08 * scale


SPEC = ModelSpec(
    key="mri", notebook="05_mri_masks", name="mri", description="3D CNN",
    metric="val_balanced_accuracy", metric_label="validation balanced accuracy",
    make_config=lambda preset: mri.mri_config(preset),
    config_from_dict=lambda d: mri.mri_config("demo", **{**d, "device": "cpu"}),
    build=lambda c: build_mri_cnn(c.cnn, input_shape=mni_grid(c.grid).shape),
    train=_train, estimate_s=_estimate_s,
)


def to_model_grid(volume: DecodedVolume, grid: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Resample an uploaded volume onto the model's MNI grid; returns data and notes.

    Raises:
        InvalidInputError: the volume covers less than half of the MNI brain on the
            model grid (wrong space or affine), or its values are not those of a
            gray-matter map (negative, or all zero inside the brain).
    """
    target = mni_grid(grid)
    notes: list[str] = []
    data = volume.data
    if data.shape == target.shape and np.allclose(volume.affine, target.affine, atol=1e-3):
        out = data
    else:
        m = np.linalg.inv(volume.affine) @ target.affine
        out = ndi.affine_transform(data, m[:3, :3], m[:3, 3], output_shape=target.shape, order=1,
                                   mode="constant", cval=0.0).astype(np.float32)
        inside = ndi.affine_transform(np.ones(data.shape, np.float32), m[:3, :3], m[:3, 3],
                                      output_shape=target.shape, order=0, cval=0.0)
        brain = gm_template(grid) > 0.2
        coverage = float(inside[brain].mean())
        if coverage < 0.5:
            raise InvalidInputError(
                f"the volume covers only {100 * coverage:.0f} % of the MNI brain on the model grid; "
                "expected a gray-matter map in MNI space (check its affine / registration)"
            )
        notes.append(f"resampled from {data.shape} voxels to the model grid {target.shape} "
                     f"({target.voxel_size:g} mm) through the file's affine")
    low, high = float(out.min()), float(out.max())
    if low < -0.05 or high <= 0:
        raise InvalidInputError(
            f"voxel values range from {low:.3g} to {high:.3g}; expected a gray-matter "
            "probability map (values in [0, 1], e.g. Clinica t1-volume output)"
        )
    if high > 1.05:
        out = np.clip(out / np.percentile(out[out > 0], 99.5), 0, 1).astype(np.float32)
        notes.append(f"values rescaled from [{low:.3g}, {high:.3g}] to [0, 1]: gray-matter "
                     "probabilities were expected")
    return np.ascontiguousarray(out, dtype=np.float32), tuple(notes)


def analyse_mri(
    model: nn.Module,
    volume: np.ndarray,
    config: mri.MRIConfig,
    atlas: Parcellation,
    *,
    iterations: int = 10,
    max_findings: int = 10,
    progress: ProgressCallback | None = None,
    notes: tuple[str, ...] = (),
    val_balanced_accuracy: float | None = None,
) -> Analysis:
    """AD probability, session-level mask and ranked ROIs of one gray-matter map.

    Args:
        model: the trained 3D CNN.
        volume: ``(D, H, W)`` gray-matter map on the model grid.
        config: the model's config (mask hyper-parameters λ₁, λ₂, β₁, β₂, lr).
        atlas: parcellation on the model grid.
        iterations: session-level mask iterations.
        max_findings: most ROIs listed (those with a non-zero density).
        progress: mask progress callback.
        notes: lines passed through to the analysis (e.g. resampling notes).
        val_balanced_accuracy: the model's validation balanced accuracy; unknown or below
            ``config.min_val_balanced_accuracy``, the decision opens with
            :func:`chance_warning` (a network at chance must not look like a diagnosis).

    Returns:
        :class:`~wslbench.dashboards.overlay.Analysis`; ``overlay`` is ``1 − m`` inside
        the brain (gray matter > 0.05; zero outside, where it means nothing to a reader)
        and ``extra["atlas"]`` the parcellation labels (for the ROI outline).
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.shape != atlas.labels.shape:
        raise InvalidInputError(f"volume has shape {vol.shape}; expected the model grid {atlas.labels.shape}")
    x = torch.from_numpy(vol)[None, None]
    model.eval()
    probability = float(predict_proba(model, x, 1)[0, 1])
    explainer = MeaningfulPerturbation(
        model, lambda1=config.lambda1, lambda2=config.lambda2, beta1=config.beta1,
        beta2=config.beta2, lr=config.mask_lr, session_max_iter=iterations,
        session_patience=iterations, batch_size=1)
    mask = explainer.optimise_session(x, 1, progress=progress).mask[0, 0].numpy()
    present = [i for i in atlas.ids if (atlas.labels == i).any()]  # coarse grids drop a few
    density = roi_vector(mask, atlas.labels, region_ids=present)
    order = np.argsort(-density)[:max_findings]
    findings = []
    for k in order:
        if density[k] <= 1e-4:
            break
        roi = atlas.labels == present[k]
        centre = tuple(float(c) for c in np.argwhere(roi).mean(0))
        findings.append(Finding("roi", atlas.names[atlas.ids.index(present[k])], float(density[k]),
                                centre, float(roi.sum())))
    verdict = "AD likely" if probability >= 0.5 else "AD unlikely (CN)"
    decision = (f"<b>AD probability: {probability:.2f}</b> — {verdict} "
                f"(3D CNN on the gray-matter map; CN = cognitively normal)")
    warning = chance_warning(val_balanced_accuracy, config.min_val_balanced_accuracy)
    if warning:
        decision = f"{warning}<br>{decision}"
    overlay = np.where(vol > 0.05, 1.0 - mask, 0.0)
    return Analysis(decision, {"ad_probability": probability}, findings, vol, overlay,
                    f"perturbation mask 1 − m ({iterations} iterations)", notes,
                    {"atlas": atlas.labels})


def chance_warning(val_balanced_accuracy: float | None, minimum: float) -> str:
    """A red banner for a model whose validation balanced accuracy is unknown or below
    ``minimum`` (at chance), else ``""``."""
    if val_balanced_accuracy is not None and val_balanced_accuracy >= minimum:
        return ""
    shown = "unknown" if val_balanced_accuracy is None else f"{val_balanced_accuracy:.2f}"
    return ('<div style="background:#b00020;color:white;padding:8px;font-weight:bold">'
            f"WARNING: this model is at chance (validation balanced accuracy {shown}, "
            f"below {minimum:g}). Its AD probability and mask mean nothing; do not use them."
            "</div>")


class SliceView(OverlayView):
    """:class:`OverlayView` for volumes: three slice sliders (as in
    :class:`~wslbench.widgets.VolumeViewer`), the mask on orthogonal slices, and the
    selected ROI outlined with the slices moved to its centre."""

    def __init__(self) -> None:
        self.slices = [widgets.IntSlider(value=0, min=0, max=1, description=name,
                                         continuous_update=False) for name in AXIS_NAMES]
        super().__init__(cmap="hot", opacity=0.6, threshold=0.1)
        self.widget.children = (widgets.HBox(self.slices), widgets.HBox([self.opacity, self.threshold]),
                                self.image_widget, self.caption)

    def sliders(self) -> list[widgets.ValueWidget]:
        return [*self.slices, self.opacity, self.threshold]

    def _move_to(self, index: tuple[int, ...]) -> None:
        """Set the slice sliders without a redraw per slider (the caller redraws)."""
        with self.debouncer.lock:
            self._quiet = True
            try:
                for slider, i in zip(self.slices, index):
                    slider.value = int(min(max(i, slider.min), slider.max))
            finally:
                self._quiet = False

    def show(self, analysis: Analysis, selected: int | None = None) -> None:
        with self.debouncer.lock:
            shape = analysis.image.shape
            if tuple(s.max + 1 for s in self.slices) != shape:
                for slider, n in zip(self.slices, shape):
                    slider.max = n - 1
                self._move_to(tuple(n // 2 for n in shape))
            super().show(analysis, selected)

    def select(self, index: int | None) -> None:
        with self.debouncer.lock:
            if index is not None and self.analysis is not None:
                self._move_to(tuple(round(p) for p in self.analysis.findings[index].position))
            super().select(index)

    def figure(self, analysis: Analysis) -> Figure:
        index = tuple(s.value for s in self.slices)
        fig = orthogonal_slices_figure(analysis.image, index, overlay=analysis.overlay,
                                       opacity=self.opacity.value, threshold=self.threshold.value,
                                       cmap=self.cmap, panel_size=3.6,
                                       scale=(0.0, max(float(analysis.overlay.max()), 1e-6)))
        if self.selected is not None:
            finding = analysis.findings[self.selected]
            atlas = np.asarray(analysis.extra["atlas"])
            roi = (atlas == atlas[tuple(round(p) for p in finding.position)]).astype(float)
            for ax, cut in zip(fig.axes, orthogonal_slices(roi, index)):
                if cut.any():
                    ax.contour(cut, levels=[0.5], colors="cyan", linewidths=1.5)
            fig.suptitle(f"{finding.label}: density {finding.score:.3f}", color="black")
        return fig


@lru_cache(maxsize=2)
def _samples(grid: str) -> dict[str, np.ndarray]:
    cohort = make_synthetic_cohort(4, 1, grid=grid, seed=4242, ad_fraction=0.5)
    return {f"synthetic subject {pid} ({'AD' if int(label) else 'CN'})": cohort.volumes[i, 0].numpy()
            for i, (pid, label) in enumerate(zip(cohort.participant_ids, cohort.labels))}


class MRIModality:
    """The MRI dashboard's :class:`~wslbench.dashboards.app.Modality`."""

    key = "mri"
    title = "Alzheimer's disease on gray-matter MRI"
    intro = ("Pick a synthetic subject or upload a gray-matter map in MNI space (NIfTI). The "
             "3D CNN gives the AD probability; a perturbation mask shows which gray matter it "
             "needs for that decision, on three slices, with the brain regions ranked by mask "
             "density. Research prototype: not a medical device.")
    spec = SPEC
    policy = MRI_POLICY
    model_label = "model"

    def make_view(self) -> SliceView:
        return SliceView()

    def samples(self, loaded: LoadedModel) -> dict[str, Callable[[], Any]]:
        return {label: (lambda v=v: (v, ())) for label, v in _samples(loaded.config.grid).items()}

    def decode(self, upload: UploadedFile, loaded: LoadedModel) -> tuple[np.ndarray, tuple[str, ...]]:
        return to_model_grid(decode_nifti(upload, MRI_POLICY), loaded.config.grid)

    def analyse(self, loaded: LoadedModel, image: tuple[np.ndarray, tuple[str, ...]],
                progress: ProgressCallback | None) -> Analysis:
        volume, notes = image
        preset = loaded.stored.preset or "demo"
        return analyse_mri(loaded.model, volume, loaded.config,
                           default_parcellation(grid=loaded.config.grid),
                           iterations=MASK_ITERATIONS.get(preset, 15), progress=progress,
                           notes=notes,
                           val_balanced_accuracy=loaded.metrics.get("val_balanced_accuracy"))


def build_dashboard(*, threaded: bool = True) -> DashboardApp:
    """The MRI dashboard, started (model resolved in the background)."""
    return DashboardApp(MRIModality(), threaded=threaded).start()
