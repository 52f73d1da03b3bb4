"""Fundus dashboard: referable-DR probability, sparsity-enhanced π heatmap, lesion candidates.

The model is the DR network of notebook ``01_dr_heatmaps`` (Quellec et al. 2017):
its grade regression is turned into P(referable DR) = P(grade ≥ 2) by the Platt
coefficients saved with it (:func:`wslbench.experiments.dr.referable_calibration`).
The explanation is the hue-constrained sensitivity π (eq. 3) of a network trained
with the sparsity term (eq. 6); lesion candidates are its local maxima inside the
field of view (:func:`wslbench.experiments.dr.lesion_candidates`, as in the FROC
evaluation of 5.5). Uploads are Graham-preprocessed (5.1.1) at the model's size.

The lesion *type* is a guess for display only — the paper's detector is
type-agnostic: dark spots are red lesions (small: microaneurysm, larger:
hemorrhage), bright ones exudates (yellowish: hard exudate, whitish: cotton-wool
spot), judged against the local background of the photograph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from wslbench.dashboards.app import DashboardApp
from wslbench.dashboards.findings import Finding
from wslbench.dashboards.model_source import LoadedModel, ModelSpec
from wslbench.dashboards.overlay import Analysis, OverlayView
from wslbench.dashboards.uploads import FUNDUS_POLICY, UploadedFile, decode_image
from wslbench.data.fundus_preprocess import preprocess_fundus, resample_like
from wslbench.data.synthetic_fundus import make_fundus_case
from wslbench.experiments import dr
from wslbench.models.dr import build_dr_net
from wslbench.progress import ProgressCallback

__all__ = ["SPEC", "FundusModality", "analyse_fundus", "guess_lesion_type", "build_dashboard"]


def _train(config: dr.DRConfig, progress: ProgressCallback | None) -> tuple[nn.Module, dict]:
    data = dr.make_dr_data(config)
    training = dr.train_dr(config, data, progress=progress)
    return training.model, dr.model_metrics(training, data)


def _estimate_s(config: dr.DRConfig) -> float:
    """Rough 2-core time: per-iteration cost ∝ batch × pixels × width, ×2.3 with ν > 0 (DESIGN §7)."""
    per_iter = 0.04 * config.batch_size * (config.input_size / 128) ** 2 * (config.width / 0.25)
    per_iter *= 2.3 if config.nu > 0 else 1.0
    cases = config.n_train + config.n_val + config.n_test
    return 5 + config.iterations * per_iter + cases * 0.035 * (config.image_size / 128) ** 2


SPEC = ModelSpec(
    key="fundus", notebook="01_dr_heatmaps", name="dr", description="DR network",
    metric="val_image_auc", metric_label="validation AUC (referable DR)",
    make_config=lambda preset: dr.dr_config(preset),
    config_from_dict=lambda d: dr.dr_config("demo", **{**d, "device": "cpu"}),
    build=lambda c: build_dr_net(c.net, input_size=c.input_size, width=c.width,
                                 input_offset=dr.input_reference(c)),
    train=_train, estimate_s=_estimate_s,
)


def guess_lesion_type(photo: np.ndarray, row: int, col: int, fov: np.ndarray) -> str:
    """A display-only type guess from the colour contrast with the local background."""
    size = photo.shape[0]
    r = max(2, size // 48)
    rr, cc = np.ogrid[:size, :size]
    dist = np.hypot(rr - row, cc - col)
    centre = photo[(dist <= r) & fov]
    ring = photo[(dist > 2 * r) & (dist <= 4 * r) & fov]
    if centre.size == 0 or ring.size == 0:
        return "lesion (type unknown)"
    contrast = float(centre.mean() - np.median(ring.mean(axis=1)))
    if contrast < 0:
        dark = (photo.mean(axis=2) < np.median(ring.mean(axis=1)) + contrast / 2) & (dist <= 3 * r)
        return "microaneurysm" if dark.sum() <= 2 * math.pi * r * r else "hemorrhage"
    return "hard exudate" if _yellowness(centre) - _yellowness(ring) > 0.03 else "cotton-wool spot"


def _yellowness(pixels: np.ndarray) -> float:
    """Mean (R + G) / 2 − B of ``(N, 3)`` pixels: exudates are yellow, cotton-wool spots white."""
    return float(((pixels[:, 0] + pixels[:, 1]) / 2 - pixels[:, 2]).mean())


def _network_inputs(image: np.ndarray, config: dr.DRConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Graham-preprocessed ``(1, 3, S, S)`` input, the photograph on the same grid and the FOV."""
    arr = np.asarray(image, dtype=np.float32)
    pre = preprocess_fundus(arr, target_width=config.image_size)
    photo = np.clip(resample_like(arr.transpose(2, 0, 1), pre), 0, 1)
    split = dr.DRSplit(torch.from_numpy(pre.image).permute(2, 0, 1)[None],
                       torch.from_numpy(photo)[None], torch.zeros(1, dtype=torch.long),
                       torch.zeros(1, 4, *pre.fov.shape, dtype=torch.bool),
                       torch.from_numpy(pre.fov)[None])
    split = dr.fit_input_size(split, config.input_size)
    return split.images.float(), split.raw[0].permute(1, 2, 0), split.fov[0]


def analyse_fundus(
    model: nn.Module,
    image: np.ndarray,
    config: dr.DRConfig,
    *,
    calibration: tuple[float, float] = (4.0, -6.0),
    max_findings: int = 8,
) -> Analysis:
    """Score, π heatmap and lesion candidates of one fundus photograph.

    Args:
        model: a trained DR network (:func:`wslbench.models.dr.build_dr_net`).
        image: ``(H, W, 3)`` float photograph in [0, 1] (any size; preprocessed here).
        config: the model's config (image/input size, candidate settings).
        calibration: Platt ``(a, b)`` of P(referable) = σ(a·s + b).
        max_findings: most candidates listed (those above 10 % of the peak).

    Returns:
        :class:`~wslbench.dashboards.overlay.Analysis` with ``scores``
        ``{"referable_probability", "grade_estimate"}``.
    """
    x, photo, fov = _network_inputs(image, config)
    model.eval()
    grade = float(dr.predict_scores(model, x)[0])
    a, b = calibration
    probability = 1.0 / (1.0 + math.exp(-(a * grade + b)))
    heatmap = dr.dr_heatmaps(model, x, "pi", q=config.q)[0, 0]
    heatmap = torch.where(fov, heatmap, torch.zeros(()))
    peaks = dr.lesion_candidates(heatmap[None, None], fov[None],
                                 min_distance=max(config.candidate_distance, x.shape[-1] // 32),
                                 sigma=config.candidate_sigma)[0]
    photo_np, fov_np = photo.numpy(), fov.numpy()
    top = float(peaks[0, 2]) if len(peaks) else 0.0
    findings = [
        Finding("lesion", guess_lesion_type(photo_np, int(r), int(c), fov_np), float(s),
                (float(r), float(c)))
        for r, c, s in peaks[:max_findings] if s > 0.1 * top and s > 0
    ]
    verdict = "referable DR likely" if probability >= 0.5 else "referable DR unlikely"
    decision = (f"<b>Referable DR probability: {probability:.2f}</b> — {verdict} "
                f"(estimated grade {grade:.1f} on the 0–4 scale; referable means grade ≥ 2)")
    title = f"π heatmap (hue-constrained, ν = {config.nu:g})"
    return Analysis(decision, {"referable_probability": probability, "grade_estimate": grade},
                    findings, photo_np, heatmap.numpy(), title)


@lru_cache(maxsize=4)
def _samples(size: int) -> dict[str, np.ndarray]:
    from wslbench.data import load_skimage_retina

    samples = {f"synthetic case {i + 1} (grade {g})": make_fundus_case(100 + i, size, g).image
               for i, g in enumerate((0, 2, 3, 4))}
    samples["scikit-image retina (real photograph, CC0)"] = load_skimage_retina()
    return samples


class FundusModality:
    """The fundus dashboard's :class:`~wslbench.dashboards.app.Modality`."""

    key = "fundus"
    title = "Diabetic retinopathy screening — fundus photograph"
    intro = ("Pick a sample or upload a colour fundus photograph. The network estimates the "
             "probability of referable diabetic retinopathy and shows where it looked "
             "(sparsity-enhanced heatmap, Quellec et al. 2017) with the lesion candidates it "
             "implies. Research prototype: not a medical device.")
    spec = SPEC
    policy = FUNDUS_POLICY
    model_label = "model"

    def make_view(self) -> OverlayView:
        return OverlayView(cmap="auto", opacity=0.6, threshold=0.2)

    def samples(self, loaded: LoadedModel) -> dict[str, Callable[[], Any]]:
        images = _samples(max(256, loaded.config.image_size))
        return {label: (lambda img=img: img) for label, img in images.items()}

    def decode(self, upload: UploadedFile, loaded: LoadedModel) -> np.ndarray:
        return decode_image(upload, FUNDUS_POLICY)

    def analyse(self, loaded: LoadedModel, image: np.ndarray,
                progress: ProgressCallback | None) -> Analysis:
        calibration = (loaded.metrics.get("platt_a", 4.0), loaded.metrics.get("platt_b", -6.0))
        return analyse_fundus(loaded.model, image, loaded.config, calibration=calibration)


def build_dashboard(*, threaded: bool = True) -> DashboardApp:
    """The fundus dashboard, started (model resolved in the background)."""
    return DashboardApp(FundusModality(), threaded=threaded).start()
