"""Group and session masks (eq. 1–2, 2.3.3–2.3.5), prob_CNN and ROI-cosine similarity tables (2.4, Tables 2–3).

Protocol (issue 24 item 3). No mask is computed on a network whose validation balanced
accuracy is below ``config.min_val_balanced_accuracy`` (:func:`learned_run` raises): a
mask of a network at chance explains nothing. Group masks (2.3.3) are optimised on the
correctly classified AD images of the CNN's *training* set, one image per update,
validated (mask selection and early stopping, 2.3.5) on the correctly classified AD
images of its *validation* set; prob_CNN is read on those validation images. Session
masks (2.3.4) cover every correctly classified AD session of subjects seen more than
once, unless ``config.session_limit`` caps them (the caller states the cap)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from wslbench.attribution.meaningful_perturbation import MeaningfulPerturbation, PerturbationResult
from wslbench.data.nifti import save_nifti
from wslbench.data.parcellation import Parcellation
from wslbench.data.volume_store import mean_volume, select_volumes
from wslbench.errors import ConfigError, InvalidInputError, RunError
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

__all__ = ["TRUTH_METRICS", "at_chance", "mask_similarity_table", "learned_run", "SessionMasks", "session_prob_cnn", "group_mask", "group_mask_cached", "session_masks", "mask_report", "hyperparameter_similarity", "save_mask_nifti", "intra_inter", "fold_table", "fold_masks", "cross_prob_cnn", "table_values"]


#: Entries of :func:`mask_report` that need the ground-truth atrophy (``None`` without it).
TRUTH_METRICS: tuple[str, ...] = ("dice_atrophy", "iou_atrophy", "energy_in_atrophy",
                                  "atrophy_share", "energy_ratio")


def _explainer(config: MRIConfig, model: MRICNN, batch_size: int) -> MeaningfulPerturbation:
    return MeaningfulPerturbation(
        model, lambda1=config.lambda1, lambda2=config.lambda2, beta1=config.beta1,
        beta2=config.beta2, lr=config.mask_lr, max_iter=config.mask_epochs,
        tolerance=config.mask_tolerance, patience=config.mask_patience,
        batch_size=batch_size, session_max_iter=config.session_iterations,
        session_factor=config.session_factor,
    )


def at_chance(run: MRIRun, config: MRIConfig) -> bool:
    """Whether the kept epoch's validation balanced accuracy (2.2.3) is unknown or below
    ``config.min_val_balanced_accuracy``."""
    score = run.val_balanced_accuracy
    return score is None or score < config.min_val_balanced_accuracy


def learned_run(config: MRIConfig, data: MRIData, fold: int = 0) -> MRIRun:
    """The fold's trained CNN, refused when it is at chance (issue 24: no mask of a network
    that learned nothing), unless ``config.refuse_at_chance`` is off (the smoke preset, whose
    seconds-long training is not expected to learn: its masks test the plumbing and the
    notebook records and shows ``cnn_at_chance``); then a warning is logged.

    Raises:
        RunError: :func:`at_chance` and ``config.refuse_at_chance``.
    """
    run = train_fold_cached(config, data, fold)
    if at_chance(run, config):
        score = run.val_balanced_accuracy
        shown = "none" if score is None else f"{score:.3f}"
        if not config.refuse_at_chance:
            _log.warning("fold-%d CNN at chance (validation balanced accuracy %s): its masks "
                         "explain nothing (refuse_at_chance is off)", fold, shown)
            return run
        raise RunError(
            f"the fold-{fold} CNN has validation balanced accuracy {shown}, below "
            f"min_val_balanced_accuracy = {config.min_val_balanced_accuracy:g}: it is at chance, "
            "so its masks would explain nothing; train longer or on more subjects"
        )
    return run


def _correct_ad(run: MRIRun, data: MRIData, index: np.ndarray, config: MRIConfig) -> np.ndarray:
    """Indices of ``index`` that are AD and correctly classified (the masks' input, 2.3.3)."""
    cohort = data.cohort
    index = np.asarray(index)
    ad = (cohort.labels[index] == 1).numpy()
    probs = predict_proba(run.model, cohort.volumes, config.batch_size, indices=index)
    return index[(probs.argmax(1) == 1).numpy() & ad]


def _group_images(config: MRIConfig, data: MRIData, fold: int) -> tuple[MRIRun, np.ndarray, np.ndarray]:
    """The learned run, its correctly classified AD training and validation images (2.3.3)."""
    run = learned_run(config, data, fold)
    f = data.folds[fold]
    images, val = _correct_ad(run, data, f.train, config), _correct_ad(run, data, f.val, config)
    if len(images) == 0 or len(val) == 0:
        raise InvalidInputError(
            f"fold {fold}: {len(images)} correctly classified AD training images and {len(val)} "
            "validation images; a group mask needs both (2.3.3)")
    return run, images, val


def group_mask(
    config: MRIConfig, data: MRIData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> PerturbationResult:
    """Group-level mask ``(1, 1, D, H, W)`` (``.mask``), section 2.3.3 and 2.3.5: optimised on
    the correctly classified AD images of the CNN's training set, one image per update, and
    selected / early-stopped on the correctly classified AD images of its validation set.
    A cancel through ``progress`` returns the best mask so far with ``interrupted=True``."""
    run, images, val = _group_images(config, data, fold)
    v = data.cohort.volumes  # a lazy cohort stays lazy: images are read one update at a time
    return _explainer(config, run.model, 1).optimise_group(
        select_volumes(v, images), 1, select_volumes(v, val), 1, progress=progress)


def group_mask_cached(
    config: MRIConfig, data: MRIData, *, fold: int = 0, progress: ProgressCallback | None = None
) -> PerturbationResult:
    """:func:`group_mask` memoised on (config, data) (the β/λ sliders of notebook 05);
    an interrupted result is returned but never cached, so a rerun computes it in full."""
    return _MASKS.get_or_compute((config, fold), data,
                                 lambda: group_mask(config, data, fold=fold, progress=progress))


@dataclass(frozen=True)
class SessionMasks:
    """Session-level masks (2.3.4) and where they come from.

    Attributes:
        masks: ``(M, 1, D, H, W)`` masks after the threshold rule.
        subjects: participant of each mask.
        indices: cohort index of each mask's session.
        eligible: correctly classified AD sessions of repeated subjects (``M`` of them
            were masked; fewer only under ``config.session_limit``).
    """

    masks: torch.Tensor
    subjects: list[str]
    indices: np.ndarray
    eligible: int


def session_masks(
    config: MRIConfig, data: MRIData, *, fold: int = 0, progress: ProgressCallback | None = None,
) -> SessionMasks:
    """Session-level masks (2.3.4, λ × 100, no validation set) of every correctly classified
    AD session of subjects with several such sessions, subject by subject, at most
    ``config.session_limit`` of them (``None``: all)."""
    run = learned_run(config, data, fold)
    cohort = data.cohort
    ids = np.asarray(cohort.participant_ids)
    chosen = _correct_ad(run, data, np.arange(len(ids)), config)
    counts = {p: int((ids[chosen] == p).sum()) for p in set(ids[chosen])}
    chosen = np.asarray([i for i in chosen if counts[ids[i]] >= 2], dtype=np.int64)
    eligible = len(chosen)
    if config.session_limit is not None:  # whole subjects, in cohort order, up to the cap
        ends = np.cumsum([counts[p] for p in dict.fromkeys(ids[chosen])])
        chosen = chosen[: int(ends[ends <= config.session_limit].max(initial=0))]
    if len(set(ids[chosen])) < 2:
        raise InvalidInputError(
            f"{len(chosen)} correctly classified AD sessions of repeated subjects; the intra- vs "
            "inter-subject comparison needs two subjects")
    result = _explainer(config, run.model, config.batch_size).optimise_session(
        select_volumes(cohort.volumes, chosen), 1, progress=progress)
    return SessionMasks(result.mask, [str(ids[i]) for i in chosen], chosen, eligible)


def session_prob_cnn(
    config: MRIConfig, data: MRIData, sessions: SessionMasks, *, fold: int = 0
) -> tuple[float, float]:
    """Intra- and inter-subject prob_CNN (2.4, 3.2.2): the CNN's mean AD probability on a
    session masked by *another* session's mask, of the same subject (intra: mean over a
    subject's ordered pairs, then over subjects) or of another subject (inter: baseline
    sessions, the first of each subject). Low = the masks occlude each other's images."""
    run = learned_run(config, data, fold)
    volumes = data.cohort.volumes
    subjects = np.asarray(sessions.subjects)

    def prob(i: int, j: int) -> float:
        return prob_cnn(run.model, volumes[sessions.indices[j:j + 1]], 1, sessions.masks[i:i + 1],
                        batch_size=1)

    intra = [np.mean([prob(i, j) for i in np.flatnonzero(subjects == s)
                      for j in np.flatnonzero(subjects == s) if i != j])
             for s in dict.fromkeys(subjects)]
    first = [int(np.flatnonzero(subjects == s)[0]) for s in dict.fromkeys(subjects)]
    inter = [prob(i, j) for i in first for j in first if i != j]
    return float(np.mean(intra)), float(np.mean(inter))


def mask_report(
    config: MRIConfig, data: MRIData, mask: torch.Tensor, *, fold: int = 0
) -> dict[str, float | None]:
    """prob_CNN (2.4) of the correctly classified AD validation images with and without the
    mask, and the agreement of the mask with the true atrophy of the images it was
    optimised on (where their mean atrophy map exceeds 5 %): Dice / IoU of the voxels below
    0.95, the share of ``1 − m`` inside the atrophy (``energy_in_atrophy``), the atrophy's
    share of the brain (``atrophy_share``, brain: mean GM > 0.1) and their ratio.

    A cohort without ground truth (real data: ``atrophy_maps`` is ``None``) has the
    truth-based entries (:data:`TRUTH_METRICS`) set to ``None``. Means over the images are
    streamed batch by batch (a lazy cohort is never materialised)."""
    run, images, val = _group_images(config, data, fold)
    v = select_volumes(data.cohort.volumes, val)
    clean = prob_cnn(run.model, v, 1, torch.ones_like(mask), batch_size=config.batch_size)
    masked = prob_cnn(run.model, v, 1, mask, batch_size=config.batch_size)
    out: dict[str, float | None] = {"prob_cnn_clean": clean, "prob_cnn_masked": masked,
                                    "ad_probability_drop": 1.0 - masked / clean}
    if data.cohort.atrophy_maps is None:
        return {**out, **dict.fromkeys(TRUTH_METRICS)}
    # GM reduced by over 5 %
    truth = mean_volume(data.cohort.atrophy_maps, images, config.batch_size)[0] > 0.05
    brain = mean_volume(data.cohort.volumes, images, config.batch_size)[0] > 0.1
    overlap = mask_overlap(mask[0, 0], truth, threshold=0.95)
    share = float(truth.sum() / brain.sum())
    return {**out, "dice_atrophy": overlap.dice, "iou_atrophy": overlap.iou,
            "energy_in_atrophy": overlap.energy, "atrophy_share": share,
            "energy_ratio": overlap.energy / share}


def hyperparameter_similarity(
    config: MRIConfig, data: MRIData, name: str, values: Sequence[float], *, fold: int = 0,
    progress: ProgressCallback | None = None,
) -> object:
    """Tables 2–3: ROI cosine similarities between group masks for each value of ``name``
    (``"beta1"``, ``"beta2"``, ``"lambda1"``, ``"lambda2"``, or ``"train_seed"`` for masks
    of independently trained runs, Fig. 6).

    As in 3.2.3, the β tables use λ₂ = ``config.beta_lambda2`` (0.001 in the paper's Table 2)
    and a value listed in ``config.mask_lr_cases`` uses its own learning rate (Fig. 4:
    lr = 0.01 for λ₂ = 0.1, where 0.1 did not converge)."""
    if name not in ("beta1", "beta2", "lambda1", "lambda2", "train_seed"):
        raise ConfigError(
            f"name must be beta1, beta2, lambda1, lambda2 or train_seed, got {name!r}"
        )
    if name in ("beta1", "beta2"):
        config = replace(config, lambda2=config.beta_lambda2)
    lrs = {(case, float(v)): lr for case, v, lr in config.mask_lr_cases}
    masks: dict[str, torch.Tensor] = {}
    for value in values:
        typed = int(value) if name == "train_seed" else float(value)
        lr = lrs.get((name, float(value)), config.mask_lr)
        result = group_mask_cached(replace(config, **{name: typed, "mask_lr": lr}), data,
                                   fold=fold, progress=progress)
        if result.interrupted:
            raise StopRequested(f"cancelled while optimising the mask for {name}={value:g}")
        masks[f"{name}={value:g}"] = result.mask
    return mask_similarity_table(masks, data.atlas)


def mask_similarity_table(masks: Mapping[str, torch.Tensor], atlas: Parcellation) -> object:
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
    """Group mask of each fold's model on its own training AD images (Fig. 6, folds)."""
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
    """prob_CNN cross-application (2.4): row = mask, column = fold whose model and correctly
    classified AD validation images it is applied to; the mean probability of the AD class
    on the masked images."""
    import pandas as pd

    table = {}
    for k in folds:
        run, _, val = _group_images(config, data, k)
        v = select_volumes(data.cohort.volumes, val)
        table[f"fold {k}"] = {name: prob_cnn(run.model, v, 1, m, batch_size=config.batch_size)
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
