"""3D CNN on gray-matter maps and meaningful-perturbation masks (Thibeau-Sutre et al. 2020).

What notebook ``05_mri_masks`` calls: a synthetic AD/CN cohort built from the real
MNI GM template nilearn ships (known atrophy regions, several sessions per subject),
the quality check of 2.3.1, a subject-level age/sex-matched CV split
(``random_state = 2``, 2.2.3), the 3D CNN of 2.2.2 trained with early stopping on
the validation loss and kept at its best validation balanced accuracy, group-level
masks (2.3.3, 2.3.5) on the correctly classified AD test images with a validation
subset, session-level masks (2.3.4, λ × 100), and the 2.4 metrics: ROI cosine
similarities between masks (Tables 2–3), intra- vs inter-subject similarity,
prob_CNN, and — because the cohort has ground truth — the overlap of the mask with
the true atrophy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from wslbench.attribution.meaningful_perturbation import MeaningfulPerturbation, PerturbationResult
from wslbench.data.cohort_tsv import quality_check
from wslbench.data.nifti import save_nifti
from wslbench.data.parcellation import Parcellation, default_parcellation
from wslbench.data.synthetic_mri import SyntheticCohort, make_synthetic_cohort
from wslbench.devices import resolve_device
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.cache import ExperimentCache
from wslbench.metrics.balanced_accuracy import compute_balanced_accuracy
from wslbench.metrics.mask_similarity import (
    intra_inter_similarity,
    mask_overlap,
    prob_cnn,
    roi_vector,
    similarity_table,
)
from wslbench.models.mri import MRI_CNN_CONFIGS, MRICNN, build_mri_cnn
from wslbench.presets import PresetTable
from wslbench.progress import ProgressCallback, StopRequested
from wslbench.seeding import seed_everything
from wslbench.training.mri_training import predict_proba, subject_level_cv, train_mri_cnn

_log = logging.getLogger("wslbench")

__all__ = [
    "MRIConfig",
    "MRI_PRESETS",
    "MRIData",
    "MRIRun",
    "mri_config",
    "make_mri_data",
    "train_fold",
    "train_fold_cached",
    "group_mask",
    "group_mask_cached",
    "session_masks",
    "mask_report",
    "hyperparameter_similarity",
    "save_mask_nifti",
    "intra_inter",
    "fold_table",
    "fold_masks",
    "cross_prob_cnn",
    "table_values",
]


@dataclass(frozen=True)
class MRIConfig:
    """Hyper-parameters of the MRI experiment (Thibeau-Sutre et al. 2020, 2.2–2.4).

    Attributes:
        grid: ``"paper"`` (121×145×121 at 1.5 mm) or ``"smoke"`` (61×73×61 at 3 mm).
        cnn: 3D CNN configuration (:data:`wslbench.models.mri.MRI_CNN_CONFIGS`).
        n_subjects, sessions_per_subject, ad_fraction, atrophy: synthetic cohort.
        n_qc_fail: sessions made to fail the quality check (max < 0.95, 2.3.1).
        n_splits, folds_to_run, test_fraction: subject-level CV (5 folds, 2.2.3).
        age_bins: age strata of the age/sex matching of the test set.
        epochs, batch_size, lr, weight_decay, patience: CNN training (early stopping 5).
        lambda1, lambda2, beta1, beta2: mask regularisation of eq. 2 (1e-4, 1e-2, 0.1, 1).
        mask_lr: mask learning rate (0.1, 2.3.5).
        mask_epochs, mask_tolerance, mask_patience: group-mask optimisation and its stop.
        session_iterations: maximum steps of a session-level mask.
        beta1_values, beta2_values: the β grids of Table 2.
        lambda1_values, lambda2_values: the λ grids of Table 3.
        stability_folds, stability_runs: folds and training runs (seeds) whose group masks
            are compared (Fig. 6, 2.4).
        train_seed: seed of the CNN initialisation and data order (runs differ by it).
        seed: seed of the synthetic cohort (the split uses random_state 2).
        device: ``None`` takes CUDA when available.
    """

    grid: Literal["paper", "smoke"] = "smoke"
    cnn: str = "smoke"
    n_subjects: int = 60
    sessions_per_subject: int = 2
    ad_fraction: float = 0.5
    atrophy: float = 0.3
    n_qc_fail: int = 1
    n_splits: int = 5
    folds_to_run: int = 1
    test_fraction: float = 0.3
    age_bins: int = 3
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    lambda1: float = 1e-4
    lambda2: float = 1e-2
    beta1: float = 0.1
    beta2: float = 1.0
    mask_lr: float = 0.1
    mask_epochs: int = 30
    mask_tolerance: float = 0.05
    mask_patience: int = 5
    session_iterations: int = 100
    beta1_values: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
    beta2_values: tuple[float, ...] = (1.0, 2.0, 3.0)
    lambda1_values: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0001)
    lambda2_values: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0001)
    stability_folds: int = 2
    stability_runs: int = 2
    train_seed: int = 0
    seed: int = 0
    device: str | None = None


MRI_PRESETS = PresetTable(
    MRIConfig,
    smoke=MRIConfig(n_subjects=30, sessions_per_subject=2, n_splits=2, epochs=3, mask_epochs=3,
                    age_bins=2, lambda1_values=(0.01, 0.0001), lambda2_values=(0.01, 0.001),
                    session_iterations=5, beta1_values=(0.1, 1.0), beta2_values=(1.0, 2.0)),
    demo=MRIConfig(),
    paper=MRIConfig(grid="paper", cnn="paper", n_subjects=666, sessions_per_subject=3,
                    epochs=50, lr=1e-4, mask_epochs=200, session_iterations=5000, age_bins=5,
                    stability_folds=5, stability_runs=5),
)


def mri_config(preset: str = "demo", /, **overrides: object) -> MRIConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = MRI_PRESETS.build(preset, **overrides)
    if config.cnn not in MRI_CNN_CONFIGS:
        raise ConfigError(f"unknown cnn {config.cnn!r}; expected one of: {', '.join(MRI_CNN_CONFIGS)}")
    return config


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MRIData:
    """The cohort after the quality check, its folds and the parcellation.

    Attributes:
        cohort: the sessions kept by the quality check.
        qc_rejected: ``(participant, session, max)`` of the rejected sessions.
        folds: subject-level folds (fixed, age/sex-matched test set).
        balance: age/sex standardized mean differences of the split.
        atlas: the default parcellation on the cohort's grid.
    """

    cohort: SyntheticCohort
    qc_rejected: list[tuple[str, str, float]]
    folds: list
    balance: object
    atlas: Parcellation


def make_mri_data(config: MRIConfig) -> MRIData:
    """Synthetic cohort → quality check (2.3.1) → subject-level CV split (2.2.3)."""
    full = make_synthetic_cohort(config.n_subjects, config.sessions_per_subject,
                                 grid=config.grid, seed=config.seed,
                                 ad_fraction=config.ad_fraction, atrophy=config.atrophy,
                                 n_qc_fail=config.n_qc_fail)
    _, report = quality_check(full.volumes, keys=full.keys)
    rejected = [(r.participant_id, r.session_id, float(r.max_value)) for r in report.rejected]
    cohort = full.select(list(report.kept))
    splits = subject_level_cv(cohort.participant_ids, cohort.labels, cohort.ages, cohort.sexes,
                              n_splits=config.n_splits, random_state=2,
                              test_fraction=config.test_fraction, age_bins=config.age_bins)
    return MRIData(cohort, rejected, splits.folds, splits.balance,
                   default_parcellation(grid=config.grid))


# --------------------------------------------------------------------------- training


@dataclass
class MRIRun:
    """One trained fold: the model, its history and its test balanced accuracy.

    ``interrupted`` runs (cancelled through ``progress``) may be shown but are never cached.
    """

    model: MRICNN
    fold: int
    history: object
    best_epoch: int
    test_balanced_accuracy: float
    interrupted: bool = False


def train_fold(
    config: MRIConfig, data: MRIData, fold: int = 0, *, progress: ProgressCallback | None = None
) -> MRIRun:
    """Train the 3D CNN on one fold and score its test set (balanced accuracy, 2.2.3)."""
    if not 0 <= fold < len(data.folds):
        raise ConfigError(f"fold must be in [0, {len(data.folds)}), got {fold}")
    f = data.folds[fold]
    cohort = data.cohort
    seed_everything(config.train_seed + 1000 * config.seed + fold)
    model = build_mri_cnn(config.cnn, input_shape=tuple(cohort.volumes.shape[2:]))
    model = model.to(resolve_device(config.device))
    result = train_mri_cnn(model, cohort.volumes, cohort.labels, f.train, f.val,
                           epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           weight_decay=config.weight_decay, patience=config.patience,
                           progress=progress, seed=config.train_seed + 1000 * config.seed + fold)
    probs = predict_proba(result.model, cohort.volumes, config.batch_size, indices=f.test)
    bacc = compute_balanced_accuracy(probs.argmax(1).numpy(), cohort.labels[f.test].numpy())
    return MRIRun(result.model, fold, result.history, result.best_epoch, bacc, result.interrupted)


_RUNS = ExperimentCache("mri trainings")
_MASKS = ExperimentCache("mri group masks", maxsize=64)


def train_fold_cached(
    config: MRIConfig, data: MRIData, fold: int = 0, *, progress: ProgressCallback | None = None
) -> MRIRun:
    """:func:`train_fold` memoised on the training fields of ``config``, ``fold`` and ``data``
    (an interrupted run is returned but not cached)."""
    return _RUNS.get_or_compute((_training_key(config), fold), data,
                                lambda: train_fold(config, data, fold, progress=progress))


def _training_key(config: MRIConfig) -> MRIConfig:
    """The config with the mask fields reset, so changing λ/β never retrains the CNN."""
    defaults = MRIConfig()
    mask_fields = ("lambda1", "lambda2", "beta1", "beta2", "mask_lr", "mask_epochs",
                   "mask_tolerance", "mask_patience", "session_iterations", "beta1_values",
                   "beta2_values")
    return replace(config, **{name: getattr(defaults, name) for name in mask_fields})


# --------------------------------------------------------------------------- masks


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


# --------------------------------------------------------------------------- models for the dashboard


def run_metrics(run: MRIRun) -> dict[str, float]:
    """Validation balanced accuracy of the kept epoch and the test balanced accuracy."""
    out = {"test_balanced_accuracy": float(run.test_balanced_accuracy),
           "best_epoch": float(run.best_epoch)}
    best = run.history.loc[run.history["epoch"] == run.best_epoch, "val_balanced_accuracy"]
    if len(best):
        out["val_balanced_accuracy"] = float(best.iloc[0])
    return out


def save_model(run: MRIRun, config: MRIConfig) -> Path | None:
    """Save the fold's CNN as the run's ``models/mri.pt`` for the MRI dashboard
    (``None`` outside a run)."""
    from wslbench.runner.model_store import save_run_model

    return save_run_model("mri", run.model, config=config, metrics=run_metrics(run),
                          notebook="05_mri_masks")


__all__ += ["run_metrics", "save_model"]
