"""Pixel-level overlap metrics: Dice index and IoU, per image, over all pixels, over classes.

Rony 2020:

* Dice index, eq. 2.3: ``Dice(G, S) = 2 |G ∩ S| / (|G| + |S|)``, i.e.
  ``2 TP / (2 TP + FP + FN)`` (eq. 3.13); IoU (Jaccard), eq. 3.12:
  ``|G ∩ S| / |G ∪ S| = TP / (TP + FP + FN)`` (eq. 3.13).
* "In order to compute Dice index for a set, we average Dice index of each
  image, unless stated otherwise" (2.1.2.2): reduction ``"image_mean"``.
* "Dice index over all pixels" (Table 2.9, 4.4.1): TP, FP and FN summed over
  every pixel of the set, then one Dice: reduction ``"pixels"``.
* "mDice metastatic", the Dice "averaged over all metastatic images" (Table 2.9,
  2.2.2): the per-image mean restricted to images whose ground truth is not
  empty: reduction ``"positive_image_mean"``.
* Eq. 4.14 (GlaS, two foreground classes "in one"):
  ``2 (TP1 + TP2) / (2 (TP1 + TP2) + FP1 + FP2 + FN1 + FN2)``: reduction
  ``"pixels"`` with ``classes=(1, 2)`` on one-hot ``(B, 3, H, W)`` masks. Counts of
  the selected classes are always *summed* before the ratio, as in eq. 4.14,
  which is not the mean of the per-class Dice values.
* mIoU (3.4.1, Pascal VOC): IoU of each class over all pixels of the set,
  averaged over the classes: reduction ``"class_mean"``.

Inputs are masks ``(B, H, W)`` (one foreground class) or one-hot ``(B, C, H, W)``,
bool or 0/1 (torch tensors or NumPy arrays); prediction and target have the same
shape. One-hot is not enforced, so multi-label masks work too.

**Empty masks** (the thesis is silent): when prediction and target are both
empty the ratio is 0/0; it is scored ``empty_score`` (default 1.0, a perfect
answer: a normal CAMELYON16 patch predicted all-normal is segmented correctly,
and "average Dice index over both metastatic and normal classes", 2.1.2.1, needs
normal images scored). Pass ``empty_score=float("nan")`` to exclude such
cases instead: means then skip them. An empty target with a non-empty prediction
scores 0, never ``empty_score``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from wslbench.errors import ConfigError, InvalidInputError

__all__ = [
    "SEGMENTATION_REDUCTIONS",
    "segmentation_counts",
    "dice_from_counts",
    "iou_from_counts",
    "compute_dice_per_image",
    "compute_iou_per_image",
    "compute_dice",
    "compute_iou",
    "DiceMetric",
    "IoUMetric",
]

SEGMENTATION_REDUCTIONS = ("image_mean", "positive_image_mean", "pixels", "class_mean")

MaskLike = torch.Tensor | np.ndarray
Counts = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def _as_mask(mask: object, name: str) -> torch.Tensor:
    """``mask`` as a bool tensor ``(B, C, H, W)``; ``(B, H, W)`` gets ``C = 1``."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"{name} must be a tensor or array, got {type(mask).__name__}")
    if mask.ndim not in (3, 4):
        raise InvalidInputError(
            f"{name} must be (B, H, W) or one-hot (B, C, H, W), got shape {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if mask.is_complex() or not ((mask == 0) | (mask == 1)).all():
            raise InvalidInputError(
                f"{name} must be bool or hold only 0 and 1; threshold or one-hot it first"
            )
        mask = mask != 0
    return mask.unsqueeze(1) if mask.ndim == 3 else mask


def segmentation_counts(pred: MaskLike, target: MaskLike) -> Counts:
    """True positive, false positive and false negative pixel counts per image and class.

    Args:
        pred: predicted masks ``(B, H, W)`` or ``(B, C, H, W)``, bool or 0/1.
        target: ground-truth masks of the same shape.

    Returns:
        ``(tp, fp, fn)``, each an int64 tensor ``(B, C)`` (``C = 1`` for ``(B, H, W)``).
    """
    p = _as_mask(pred, "pred")
    t = _as_mask(target, "target")
    if p.shape != t.shape:
        raise InvalidInputError(
            f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}"
        )
    dims = (2, 3)
    tp = (p & t).sum(dims, dtype=torch.int64)
    fp = (p & ~t).sum(dims, dtype=torch.int64)
    fn = (~p & t).sum(dims, dtype=torch.int64)
    return tp, fp, fn


def _ratio(num: torch.Tensor, den: torch.Tensor, empty_score: float) -> torch.Tensor:
    num, den = num.to(torch.float64), den.to(torch.float64)
    out = num / den.clamp_min(1.0)
    return torch.where(den == 0, torch.full_like(out, empty_score), out)


def dice_from_counts(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, empty_score: float = 1.0
) -> torch.Tensor:
    """``2 TP / (2 TP + FP + FN)`` elementwise (Rony 2020, eqs. 2.3 and 3.13).

    Entries with ``2 TP + FP + FN = 0`` (both masks empty) get ``empty_score``.
    """
    return _ratio(2 * tp, 2 * tp + fp + fn, empty_score)


def iou_from_counts(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, empty_score: float = 1.0
) -> torch.Tensor:
    """``TP / (TP + FP + FN)`` elementwise (Rony 2020, eqs. 3.12 and 3.13).

    Entries with ``TP + FP + FN = 0`` (both masks empty) get ``empty_score``.
    """
    return _ratio(tp, tp + fp + fn, empty_score)


def _check_options(reduction: str, empty_score: float) -> None:
    if reduction not in SEGMENTATION_REDUCTIONS:
        raise ConfigError(
            f"reduction {reduction!r} unknown; expected one of {list(SEGMENTATION_REDUCTIONS)}"
        )
    if not (math.isnan(empty_score) or 0.0 <= empty_score <= 1.0):
        raise ConfigError(f"empty_score must be in [0, 1] or NaN (exclude), got {empty_score}")


def _select(counts: Counts, classes: Sequence[int] | None) -> Counts:
    """Keep the columns of ``classes`` (all when ``None``)."""
    n_classes = counts[0].shape[1]
    if classes is None:
        return counts
    idx = list(classes)
    if not idx or len(set(idx)) != len(idx):
        raise InvalidInputError(f"classes must be a non-empty list of distinct indices, got {idx}")
    bad = [c for c in idx if not 0 <= c < n_classes]
    if bad:
        raise InvalidInputError(
            f"classes {bad} out of range for masks with {n_classes} channel(s); "
            f"expected indices in [0, {n_classes - 1}]"
        )
    return tuple(c[:, idx] for c in counts)  # type: ignore[return-value]


def _nanmean(values: torch.Tensor, what: str) -> float:
    kept = values[~torch.isnan(values)]
    if kept.numel() == 0:
        raise InvalidInputError(
            f"no {what} left to average: every one is empty in both prediction and target "
            "and empty_score is NaN (excluded); use empty_score=1.0 to score them"
        )
    return float(kept.mean())


def _reduce(
    score_fn: ScoreFn,
    counts: Counts,
    reduction: str,
    classes: Sequence[int] | None,
    empty_score: float,
) -> float:
    """One number from per-image, per-class counts (see the module docstring)."""
    _check_options(reduction, empty_score)
    tp, fp, fn = _select(counts, classes)
    if reduction == "class_mean":
        return _nanmean(score_fn(tp.sum(0), fp.sum(0), fn.sum(0), empty_score), "class")
    tp, fp, fn = tp.sum(1), fp.sum(1), fn.sum(1)  # pool the selected classes, as eq. 4.14
    if reduction == "pixels":
        return float(score_fn(tp.sum(), fp.sum(), fn.sum(), empty_score))
    if reduction == "positive_image_mean":
        positive = (tp + fn) > 0
        if not positive.any():
            raise InvalidInputError(
                "reduction 'positive_image_mean' needs at least one image with a non-empty "
                "target, got none"
            )
        tp, fp, fn = tp[positive], fp[positive], fn[positive]
    return _nanmean(score_fn(tp, fp, fn, empty_score), "image")


def _per_image(
    score_fn: ScoreFn,
    pred: MaskLike,
    target: MaskLike,
    classes: Sequence[int] | None,
    empty_score: float,
) -> torch.Tensor:
    _check_options("image_mean", empty_score)
    tp, fp, fn = _select(segmentation_counts(pred, target), classes)
    return score_fn(tp.sum(1), fp.sum(1), fn.sum(1), empty_score)


def compute_dice_per_image(
    pred: MaskLike,
    target: MaskLike,
    classes: Sequence[int] | None = None,
    empty_score: float = 1.0,
) -> torch.Tensor:
    """Dice index of every image (Rony 2020, eq. 2.3), selected classes pooled as in eq. 4.14.

    Args:
        pred: predicted masks ``(B, H, W)`` or one-hot ``(B, C, H, W)``, bool or 0/1.
        target: ground-truth masks of the same shape.
        classes: channels to pool (all when ``None``); e.g. ``(1,)`` for the foreground
            of a 2-channel one-hot mask.
        empty_score: value when both masks are empty (NaN to mark as excluded).

    Returns:
        ``(B,)`` float64 tensor.
    """
    return _per_image(dice_from_counts, pred, target, classes, empty_score)


def compute_iou_per_image(
    pred: MaskLike,
    target: MaskLike,
    classes: Sequence[int] | None = None,
    empty_score: float = 1.0,
) -> torch.Tensor:
    """IoU of every image (Rony 2020, eq. 3.12); arguments as :func:`compute_dice_per_image`."""
    return _per_image(iou_from_counts, pred, target, classes, empty_score)


def compute_dice(
    pred: MaskLike,
    target: MaskLike,
    reduction: str = "image_mean",
    classes: Sequence[int] | None = None,
    empty_score: float = 1.0,
) -> float:
    """Dice index of a set of images (Rony 2020, eqs. 2.3 and 4.14).

    Args:
        pred: predicted masks ``(B, H, W)`` or one-hot ``(B, C, H, W)``, bool or 0/1.
        target: ground-truth masks of the same shape.
        reduction: ``"image_mean"`` (mean of per-image Dice, 2.1.2.2),
            ``"positive_image_mean"`` (mean over images with a non-empty target,
            "mDice metastatic"), ``"pixels"`` (Dice over all pixels; eq. 4.14 with
            ``classes=(1, 2)``) or ``"class_mean"`` (Dice over all pixels per class,
            averaged over the classes).
        classes: channels taken into account (all when ``None``).
        empty_score: score of a both-empty image (or class); NaN excludes it.

    Returns:
        The Dice index in [0, 1] (NaN only for ``"pixels"`` when everything is empty
        and ``empty_score`` is NaN).
    """
    return _reduce(
        dice_from_counts, segmentation_counts(pred, target), reduction, classes, empty_score
    )


def compute_iou(
    pred: MaskLike,
    target: MaskLike,
    reduction: str = "image_mean",
    classes: Sequence[int] | None = None,
    empty_score: float = 1.0,
) -> float:
    """IoU of a set of images (Rony 2020, eq. 3.12); ``reduction="class_mean"`` is the mIoU.

    For the Pascal VOC mIoU of 3.4.1, pass one-hot ``(B, 21, H, W)`` masks,
    ``reduction="class_mean"`` and ``empty_score=float("nan")`` so that a class absent
    from both prediction and ground truth of the whole set is left out of the mean.
    Arguments otherwise as :func:`compute_dice`.
    """
    return _reduce(
        iou_from_counts, segmentation_counts(pred, target), reduction, classes, empty_score
    )


class _OverlapMetric:
    """Accumulates per-image, per-class counts; subclasses choose Dice or IoU."""

    _score_fn: ScoreFn

    def __init__(
        self,
        reduction: str = "image_mean",
        classes: Sequence[int] | None = None,
        empty_score: float = 1.0,
    ) -> None:
        _check_options(reduction, empty_score)
        self.reduction = reduction
        self.classes = None if classes is None else tuple(classes)
        self.empty_score = empty_score
        self._counts: list[Counts] = []

    def __call__(self, pred: MaskLike, target: MaskLike) -> None:
        """Add one batch of ``(B, H, W)`` or ``(B, C, H, W)`` prediction and target masks."""
        counts = segmentation_counts(pred, target)
        if self._counts and counts[0].shape[1] != self._counts[0][0].shape[1]:
            raise InvalidInputError(
                f"batch has {counts[0].shape[1]} channel(s) but earlier batches had "
                f"{self._counts[0][0].shape[1]}"
            )
        _select(counts, self.classes)  # fail on this batch, not at aggregate()
        self._counts.append(counts)

    def aggregate(self) -> float:
        """The metric over every batch since the last :meth:`reset` (see ``reduction``)."""
        if not self._counts:
            raise InvalidInputError(
                f"{type(self).__name__} has no data; call it on at least one batch"
            )
        counts = tuple(torch.cat(parts) for parts in zip(*self._counts))
        return _reduce(self._score_fn, counts, self.reduction, self.classes, self.empty_score)

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._counts.clear()


class DiceMetric(_OverlapMetric):
    """Dice index accumulated over batches (Rony 2020, eqs. 2.3 and 4.14).

    Args:
        reduction: as in :func:`compute_dice`.
        classes: channels taken into account (all when ``None``).
        empty_score: score of a both-empty image (or class); NaN excludes it.

    Example:
        >>> metric = DiceMetric(reduction="pixels", classes=(1, 2))  # eq. 4.14
        >>> for pred, target in batches:  # doctest: +SKIP
        ...     metric(pred, target)
        >>> dice = metric.aggregate()  # doctest: +SKIP
    """

    _score_fn = staticmethod(dice_from_counts)


class IoUMetric(_OverlapMetric):
    """IoU accumulated over batches (Rony 2020, eq. 3.12); ``"class_mean"`` gives the mIoU.

    Args:
        reduction: as in :func:`compute_dice`.
        classes: channels taken into account (all when ``None``).
        empty_score: score of a both-empty image (or class); NaN excludes it.
    """

    _score_fn = staticmethod(iou_from_counts)
