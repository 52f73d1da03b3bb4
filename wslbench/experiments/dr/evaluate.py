"""Heatmaps (ω eq. 2, π eq. 3, LRP, Grad-CAM), image ROC with DeLong CI and lesion FROC (Quellec et al. 2017, 5.3–5.5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi
from torch import nn

from wslbench.attribution import create_attribution
from wslbench.data.fundus_preprocess import GRAHAM_OFFSET
from wslbench.data.synthetic_fundus import LESION_TYPES
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.dr.config import DRConfig, input_reference
from wslbench.experiments.dr.data import DRSplit, fit_input_size
from wslbench.metrics import compute_froc, compute_froc_areas, compute_roc_curve, delong_ci
from wslbench.metrics.froc import extract_candidates
from wslbench.models.dr import DRNet

__all__ = ["HEATMAP_METHODS", "DREvaluation", "predict_scores", "dr_heatmaps", "grad_cam_layer", "lesion_candidates", "evaluate_dr", "compare_heatmaps"]


#: Heatmap name → (attribution registry name, keyword arguments) for the DR nets.
HEATMAP_METHODS: dict[str, tuple[str, dict[str, object]]] = {
    "omega": ("sensitivity", {}),
    "pi": ("hue-constrained", {}),
    "lrp": ("lrp", {"rule": "epsilon", "epsilon": 1e-2}),
    "grad-cam": ("grad-cam", {}),
}


def grad_cam_layer(model: DRNet) -> nn.Module:
    """The last convolutional activation of a DR network, where Grad-CAM is taken.

    ``model.layers[: model.feature_index]`` ends with the activation of the last
    convolution (:meth:`DRNet.forward_features`); ``layers[feature_index]`` is the final
    RMS / max pooling, whose output is 1×1 at the smoke and demo sizes and would give a
    constant map (Selvaraju et al. 2017 take the last convolutional feature map).
    """
    if not isinstance(model, DRNet) or model.feature_index < 1:
        raise InvalidInputError(
            f"Grad-CAM needs a DR network with a convolutional part, got {type(model).__name__}"
        )
    return model.layers[model.feature_index - 1]


def dr_heatmaps(
    model: DRNet,
    images: torch.Tensor,
    method: str = "pi",
    *,
    q: float = 1.0,
    batch_size: int = 32,
    reference: float = GRAHAM_OFFSET,
) -> torch.Tensor:
    """Raw heatmaps ``(N, 1, S, S)`` of ``images`` (Quellec 2017, section 3 and Fig. 4).

    Args:
        model: a trained DR network.
        images: ``(N, 3, S, S)`` network-ready images.
        method: ``"omega"`` (eq. 2), ``"pi"`` (eq. 3), ``"lrp"`` (ε rule) or
            ``"grad-cam"`` (on the last convolutional activation, :func:`grad_cam_layer`).
        q: colour-channel norm of ω.
        batch_size: images per backward pass.
        reference: input value encoding zero of the paper's ``I_n`` (π only): the mask
            of eq. 3 multiplies ``images − reference``, so it scales contrast to the
            background, not brightness. :data:`GRAHAM_OFFSET` (0.5) for
            Graham-preprocessed images (the default); 0 for raw photographs
            (:func:`~wslbench.experiments.dr.input_reference` picks it from a config).
    """
    if method not in HEATMAP_METHODS:
        raise ConfigError(
            f"unknown heatmap method {method!r}; expected one of: {', '.join(HEATMAP_METHODS)}"
        )
    name, kwargs = HEATMAP_METHODS[method]
    kwargs = dict(kwargs)
    if method == "omega":
        kwargs["q"] = q
    if method == "pi":
        kwargs["reference"] = reference
    if method == "grad-cam":
        kwargs["layer"] = grad_cam_layer(model)
    explainer = create_attribution(name, model, **kwargs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        maps = [explainer.attribute(images[i:i + batch_size].to(device)).cpu()
                for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(maps)


def lesion_candidates(
    heatmaps: torch.Tensor, fov: torch.Tensor, *, min_distance: int, sigma: float = 0.0
) -> list[np.ndarray]:
    """Local maxima of each heatmap inside its field of view: ``(K, 3)`` rows (row, col, score).

    The map is first smoothed by a Gaussian of ``sigma`` px (0: none), so that one lesion
    gives one maximum rather than a cluster of pixel-level gradient peaks.
    """
    if heatmaps.ndim != 4 or heatmaps.shape[1] != 1 or fov.shape != heatmaps[:, 0].shape:
        raise InvalidInputError(
            f"heatmaps must be (N, 1, S, S) and fov (N, S, S), got {tuple(heatmaps.shape)} "
            f"and {tuple(fov.shape)}"
        )
    maps = heatmaps[:, 0].double().numpy()
    if sigma > 0:
        maps = ndi.gaussian_filter(maps, sigma=(0, sigma, sigma))
    maps = np.where(fov.numpy(), maps, 0.0)
    return [extract_candidates(m, min_distance=min_distance, threshold=0.0) for m in maps]


@dataclass(frozen=True)
class DREvaluation:
    """Image- and lesion-level performance (Quellec 2017, 5.5).

    Attributes:
        scores: ``(N,)`` regression outputs; ``labels``: referable (grade ≥ 2).
        image_auc, auc_ci: ROC area and its DeLong 95 % interval.
        froc_areas: lesion type → limited FROC area, plus ``"mean"`` (Ā_z).
        froc_curves: lesion type → (FP per image, sensitivity).
        roc_curve: (false-positive rate, true-positive rate).
    """

    scores: np.ndarray
    labels: np.ndarray
    image_auc: float
    auc_ci: tuple[float, float]
    froc_areas: dict[str, float]
    froc_curves: dict[str, tuple[np.ndarray, np.ndarray]]
    roc_curve: tuple[np.ndarray, np.ndarray]

    def summary(self) -> dict[str, float]:
        """Flat numbers: ``image_auc``, ``auc_low``, ``auc_high``, ``froc_<type>``, ``froc_mean``."""
        out = {"image_auc": self.image_auc, "auc_low": self.auc_ci[0], "auc_high": self.auc_ci[1]}
        out.update({f"froc_{k}": v for k, v in self.froc_areas.items()})
        return out


@torch.no_grad()
def predict_scores(model: DRNet, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Regression outputs ``(N,)`` of ``model`` on ``images`` (no gradients)."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, images.shape[0], batch_size)]).numpy()


def evaluate_dr(
    model: DRNet,
    split: DRSplit,
    config: DRConfig,
    *,
    method: str | None = None,
    heatmaps: torch.Tensor | None = None,
) -> DREvaluation:
    """Image-level ROC + DeLong CI and lesion-level FROC of ``model`` on ``split``.

    Args:
        model: the network (its train/eval mode is kept).
        split: cases with grades, lesion masks and fields of view.
        config: supplies ``candidate_distance``, ``max_fp``, ``criterion`` and ``q``.
        method: heatmap method for the lesion candidates (default: the training criterion).
        heatmaps: precomputed ``(N, 1, S, S)`` heatmaps (skips their computation).
    """
    split = fit_input_size(split, config.input_size)
    was_training = model.training
    model.eval()
    try:
        scores = predict_scores(model, split.images)
        if heatmaps is None:
            heatmaps = dr_heatmaps(model, split.images, method or config.criterion, q=config.q,
                                   reference=input_reference(config))
    finally:
        model.train(was_training)
    labels = split.referable.numpy().astype(int)
    if labels.min() == labels.max() or min(labels.sum(), (1 - labels).sum()) < 2:
        raise InvalidInputError("the split needs at least 2 referable and 2 non-referable cases")
    auc, low, high, _ = delong_ci(scores, labels)
    fpr, tpr, _ = compute_roc_curve(scores, labels)
    candidates = lesion_candidates(heatmaps, split.fov, min_distance=config.candidate_distance,
                                   sigma=config.candidate_sigma)
    masks = {kind: [m.numpy() for m in split.masks[:, t]] for t, kind in enumerate(LESION_TYPES)}
    present = {k: v for k, v in masks.items() if any(m.any() for m in v)}
    areas = compute_froc_areas(candidates, present, max_fp=config.max_fp)
    curves = {}
    for kind, kind_masks in present.items():
        fp, sens, _ = compute_froc(candidates, kind_masks)
        curves[kind] = (np.asarray(fp), np.asarray(sens))
    return DREvaluation(scores, labels, float(auc), (float(low), float(high)), areas, curves,
                        (np.asarray(fpr), np.asarray(tpr)))


def compare_heatmaps(
    entries: Mapping[str, tuple[DRNet, torch.Tensor]],
    split: DRSplit,
    config: DRConfig,
    *,
    steps: int = 10,
) -> list[dict[str, float | str]]:
    """One row per heatmap (Fig. 4 as numbers): localisation and faithfulness.

    Args:
        entries: name → (the model the map explains, its ``(N, 1, S, S)`` maps of ``split``).
        split: the cases the maps were computed on.
        config: supplies the candidate and FROC settings.
        steps: deletion/insertion steps.

    Columns: ``pointing_game`` (share of lesion-bearing cases whose heatmap maximum lies
    on a lesion), ``energy_in_mask`` (share of positive heatmap mass on lesions, mean over
    those cases), ``froc_mean`` (Ā_z of the candidates the map yields), and the areas
    under the deletion and insertion curves of the referable cases' scores (pixels
    replaced by / restored from their image's mean, most important first; lower deletion
    and higher insertion area mean a more faithful map).
    """
    from wslbench.metrics import deletion_curve, energy_in_mask, insertion_curve, pointing_game

    split = fit_input_size(split, config.input_size)
    truth = split.masks.any(dim=1)
    has = truth.flatten(1).any(1)
    if not has.any():
        raise InvalidInputError("no case of the split carries a lesion; nothing to localise")
    referable = split.referable
    rows: list[dict[str, float | str]] = []
    masks = {kind: [m.numpy() for m in split.masks[:, t]] for t, kind in enumerate(LESION_TYPES)}
    present = {k: v for k, v in masks.items() if any(m.any() for m in v)}
    for name, (model, m) in entries.items():
        if m.shape != (len(split), 1, *split.images.shape[2:]):
            raise InvalidInputError(
                f"maps of {name!r} have shape {tuple(m.shape)}, expected "
                f"{(len(split), 1, *split.images.shape[2:])}"
            )
        inside = torch.where(split.fov[:, None], m, torch.zeros(()))
        candidates = lesion_candidates(m, split.fov, min_distance=config.candidate_distance,
                                       sigma=config.candidate_sigma)
        was_training = model.training
        model.eval()
        try:
            x, maps = split.images[referable], inside[referable]
            deletion = deletion_curve(model, x, maps, steps=steps, baseline="mean")
            insertion = insertion_curve(model, x, maps, steps=steps, baseline="mean")
        finally:
            model.train(was_training)
        rows.append({
            "heatmap": name,
            "pointing_game": float(pointing_game(inside[has], truth[has]).float().mean()),
            "energy_in_mask": float(energy_in_mask(inside[has], truth[has]).mean()),
            "froc_mean": compute_froc_areas(candidates, present, max_fp=config.max_fp)["mean"],
            "deletion_auc": float(deletion.auc.mean()),
            "insertion_auc": float(insertion.auc.mean()),
        })
    return rows
