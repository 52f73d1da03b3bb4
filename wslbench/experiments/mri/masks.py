"""Group and session masks (eq. 1–2, 2.3.4–2.3.5), prob_CNN and ROI-cosine similarity tables (2.4, Tables 2–3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from wslbench.attribution.meaningful_perturbation import MeaningfulPerturbation, PerturbationResult
from wslbench.data.nifti import save_nifti
from wslbench.data.parcellation import Parcellation
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.mri.config import MRIConfig, _log
from wslbench.experiments.mri.data import MRIData
from wslbench.experiments.mri.train import _MASKS, MRIRun, train_fold_cached
from wslbench.metrics.mask_similarity import (
    intra_inter_similarity,
    mask_overlap,
    prob_cnn,
    roi_vector,
    similarity_table,
)
from wslbench.models.mri import MRICNN
from wslbench.progress import ProgressCallback, StopRequested
from wslbench.training.mri_training import predict_proba

__all__ = ["group_mask", "group_mask_cached", "session_masks", "mask_report", "hyperparameter_similarity", "save_mask_nifti", "intra_inter", "fold_table", "fold_masks", "cross_prob_cnn", "table_values"]


def _explainer(config: MRIConfig, model: MRICNN) -> MeaningfulPerturbation:
    return MeaningfulPerturbation(
        model, lambda1=config.lambda1, lambda2=config.lambda2, beta1=config.beta1,
        beta2=config.beta2, lr=config.mask_lr, max_iter=config.mask_epochs,
        tolerance=config.mask_tolerance, patience=config.mask_patience,
        batch_size=config.batch_size, session_max_iter=config.session_iterations,
    )


def _correct_ad(run: MRIRun, data: MRIData, index: np.ndarray, config: MRIConfig) -> np.ndarray:
    """Indices of ``index`` that are AD and correctly classified (the masks' input, 2.3.3).

    When the model classifies none of them correctly (a barely trained smoke model), all
    AD images of ``index`` are returned, so the pipeline still runs end to end.
    """
    cohort = data.cohort
    index = np.asarray(index)
    ad = (cohort.labels[index] == 1).numpy()
    probs = predict_proba(run.model, cohort.volumes, config.batch_size, indices=index)
    ok = (probs.argmax(1) == 1).numpy() & ad
    if not ok.any():
        _log.warning("the model classifies none of the %d AD images correctly; the masks are "
                     "computed on all of them (a model at chance gives meaningless masks)", int(ad.sum()))
        return index[ad]
    return index[ok]


def group_mask(
    config: MRIConfig, data: MRIData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> PerturbationResult:
    """Group-level mask ``(1, 1, D, H, W)`` (``.mask``) of the correctly classified AD test
    images, with the correctly classified AD validation images as its validation set (2.3.5).
    A cancel through ``progress`` returns the best mask so far with ``interrupted=True``."""
    run = train_fold_cached(config, data, fold)
    f = data.folds[fold]
    images = _correct_ad(run, data, f.test, config)
    val = _correct_ad(run, data, f.val, config)
    if len(images) == 0:
        raise InvalidInputError("the test set holds no AD image; nothing to explain")
    if len(val) == 0:
        val = images
    v = data.cohort.volumes
    return _explainer(config, run.model).optimise_group(v[images], 1, v[val], 1, progress=progress)


def group_mask_cached(
    config: MRIConfig, data: MRIData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> PerturbationResult:
    """:func:`group_mask` memoised on (config, data) (the β/λ sliders of notebook 05);
    an interrupted result is returned but never cached, so a rerun computes it in full."""
    return _MASKS.get_or_compute((config, fold), data,
                                 lambda: group_mask(config, data, fold=fold, progress=progress))


def session_masks(
    config: MRIConfig, data: MRIData, *, fold: int = 0, limit: int = 8,
    progress: ProgressCallback | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Session-level masks (2.3.4, λ × 100) of up to ``limit`` correctly classified AD
    sessions of subjects with several sessions; returns the masks and their subject ids."""
    run = train_fold_cached(config, data, fold)
    cohort = data.cohort
    ids = np.asarray(cohort.participant_ids)
    every = np.arange(len(ids))
    chosen = _correct_ad(run, data, every, config)
    counts = {p: int((ids[chosen] == p).sum()) for p in set(ids[chosen])}
    chosen = np.asarray([i for i in chosen if counts[ids[i]] >= 2][:limit])
    if len(chosen) < 2:
        raise InvalidInputError("fewer than two correctly classified AD sessions of repeated subjects")
    result = _explainer(config, run.model).optimise_session(
        cohort.volumes[chosen], 1, progress=progress)
    return result.mask, [str(ids[i]) for i in chosen]


def mask_report(
    config: MRIConfig, data: MRIData, mask: torch.Tensor, *, fold: int = 0
) -> dict[str, float]:
    """prob_CNN of the AD test images with and without the mask, and the overlap of the
    mask (voxels below 0.95) with the true atrophy (where the mean atrophy map of those
    images exceeds 5 %)."""
    run = train_fold_cached(config, data, fold)
    images = _correct_ad(run, data, data.folds[fold].test, config)
    v = data.cohort.volumes[images]
    targets = torch.ones(len(images), dtype=torch.long)
    clean = prob_cnn(run.model, v, targets, torch.ones_like(mask), batch_size=config.batch_size)
    masked = prob_cnn(run.model, v, targets, mask, batch_size=config.batch_size)
    truth = data.cohort.atrophy_maps[images].mean(0)[0] > 0.05  # GM reduced by over 5 %
    overlap = mask_overlap(mask[0, 0], truth, threshold=0.95)
    return {"prob_cnn_clean": clean, "prob_cnn_masked": masked, "dice_atrophy": overlap.dice,
            "iou_atrophy": overlap.iou, "energy_in_atrophy": overlap.energy}


def hyperparameter_similarity(
    config: MRIConfig, data: MRIData, name: str, values: Sequence[float], *, fold: int = 0,
    progress: ProgressCallback | None = None,
) -> object:
    """Tables 2–3: ROI cosine similarities between group masks for each value of ``name``
    (``"beta1"``, ``"beta2"``, ``"lambda1"``, ``"lambda2"``, or ``"train_seed"`` for masks
    of independently trained runs, Fig. 6)."""
    if name not in ("beta1", "beta2", "lambda1", "lambda2", "train_seed"):
        raise ConfigError(
            f"name must be beta1, beta2, lambda1, lambda2 or train_seed, got {name!r}"
        )
    masks: dict[str, torch.Tensor] = {}
    for value in values:
        typed = int(value) if name == "train_seed" else float(value)
        result = group_mask_cached(replace(config, **{name: typed}), data, fold=fold,
                                   progress=progress)
        if result.interrupted:
            raise StopRequested(f"cancelled while optimising the mask for {name}={value:g}")
        masks[f"{name}={value:g}"] = result.mask
    return _similarity_or_missing(masks, data.atlas)


def _similarity_or_missing(masks: Mapping[str, torch.Tensor], atlas: Parcellation) -> object:
    """ROI cosine similarity table; a mask that perturbs no ROI (all ones) has no direction,
    so its row and column are left empty (NaN) instead of failing the whole table."""
    import pandas as pd

    moved = {k: m[0, 0] for k, m in masks.items()
             if np.abs(roi_vector(m[0, 0], atlas.labels)).sum() > 0}
    table = pd.DataFrame(np.nan, index=list(masks), columns=list(masks))
    if len(moved) >= 2:
        table.loc[list(moved), list(moved)] = similarity_table(moved, atlas.labels).values
    elif moved:
        table.loc[list(moved), list(moved)] = 1.0
    return table


def table_values(table: object) -> list[list[float | None]]:
    """A similarity table as nested lists for ``record()`` (empty cells become ``None``)."""
    return [[None if not np.isfinite(v) else round(float(v), 6) for v in row]
            for row in np.asarray(table, dtype=float)]


def fold_masks(
    config: MRIConfig, data: MRIData, folds: Sequence[int], *,
    progress: ProgressCallback | None = None,
) -> dict[str, torch.Tensor]:
    """Group mask of each fold's model on its own AD test images (Fig. 6, folds)."""
    masks = {}
    for k in folds:
        result = group_mask_cached(config, data, fold=k, progress=progress)
        if result.interrupted:
            raise StopRequested(f"cancelled while optimising the mask of fold {k}")
        masks[f"fold {k}"] = result.mask
    return masks


def cross_prob_cnn(
    config: MRIConfig, data: MRIData, masks: Mapping[str, torch.Tensor], folds: Sequence[int]
) -> object:
    """prob_CNN cross-application (2.4): row = mask, column = fold whose model and AD test
    images it is applied to; the mean probability of the AD class on the masked images."""
    import pandas as pd

    table = {}
    for k in folds:
        run = train_fold_cached(config, data, k)
        images = _correct_ad(run, data, data.folds[k].test, config)
        v = data.cohort.volumes[images]
        targets = torch.ones(len(images), dtype=torch.long)
        table[f"fold {k}"] = {name: prob_cnn(run.model, v, targets, m, batch_size=config.batch_size)
                              for name, m in masks.items()}
    return pd.DataFrame(table)


def intra_inter(
    masks: torch.Tensor, subjects: Sequence[str], atlas: Parcellation
) -> tuple[float | None, float | None]:
    """Mean intra-subject and inter-subject ROI similarity of session masks (2.4).

    Masks that perturb no ROI (all ones: the regularisation won, e.g. too few session
    iterations) have no direction and are left out; with fewer than two subjects or no
    repeated subject left, ``(None, None)`` is returned instead of an undefined cosine.
    """
    vectors = np.asarray(roi_vector(masks, atlas.labels))
    keep = np.abs(vectors).sum(axis=1) > 0
    kept = [s for s, k in zip(subjects, keep) if k]
    if len(set(kept)) < 2 or len(set(kept)) == len(kept):
        return None, None
    return intra_inter_similarity(vectors[keep], kept)


def save_mask_nifti(mask: torch.Tensor, data: MRIData, path: str | Path) -> Path:
    """Write a mask as NIfTI with the cohort's affine (never overwrites)."""
    return save_nifti(mask[0, 0].numpy() if mask.ndim == 5 else np.asarray(mask),
                      data.cohort.affine, path)


def fold_table(runs: Mapping[int, MRIRun]) -> list[dict[str, float]]:
    """Per-fold best epoch and test balanced accuracy."""
    return [{"fold": k, "best_epoch": r.best_epoch, "test_balanced_accuracy": r.test_balanced_accuracy}
            for k, r in runs.items()]
