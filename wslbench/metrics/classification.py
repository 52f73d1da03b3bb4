"""Image-level classification metrics: accuracy, average precision (AP) and mAP.

Rony 2020, 2.1.2.1 ("Evaluation A"): accuracy (eq. 2.1) and the mean average
precision over classes (eq. 2.2, after Su, Yuan & Zhu 2015). Values are
returned as fractions in [0, 1]; the thesis's tables show them ×100 (%).

Average precision is the non-interpolated area under the precision–recall
step curve, ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score
thresholds in decreasing order. **Ties**: samples with equal scores enter the
ranking together (one threshold per distinct score), so the result does not
depend on the order of tied samples; this is the definition of
``sklearn.metrics.average_precision_score``. Without ties it equals Su et al.'s
mean, over the positives, of the precision at each positive's rank.
"""

from __future__ import annotations

import numpy as np
import torch

from wslbench.errors import InvalidInputError
from wslbench.metrics._arrays import as_float_array

__all__ = [
    "compute_accuracy",
    "compute_average_precision",
    "compute_per_class_ap",
    "compute_map",
    "AccuracyMetric",
    "APMetric",
]

ArrayLike = np.ndarray | torch.Tensor | list[float] | tuple[float, ...]


def _class_indices(values: np.ndarray, name: str) -> np.ndarray:
    """``(N,)`` non-negative integer class indices from a float array."""
    if values.ndim != 1:
        raise InvalidInputError(f"{name} must be (N,) class indices, got shape {values.shape}")
    if (values < 0).any() or (values != np.round(values)).any():
        raise InvalidInputError(f"{name} must hold non-negative integer class indices")
    return values.astype(np.int64)


def _predicted_classes(predictions: ArrayLike) -> np.ndarray:
    """``(N,)`` class indices from ``(N,)`` indices or the argmax of ``(N, C)`` scores."""
    arr = as_float_array(predictions, "predictions")
    if arr.ndim == 2:
        return np.argmax(arr, axis=1)  # ties: the lowest class index wins
    if arr.ndim != 1:
        raise InvalidInputError(
            f"predictions must be (N,) class indices or (N, C) scores, got shape {arr.shape}"
        )
    return _class_indices(arr, "predictions")


def _correct(predictions: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """``(N,)`` bool: prediction equals label."""
    pred = _predicted_classes(predictions)
    y = _class_indices(as_float_array(labels, "labels"), "labels")
    if pred.shape != y.shape:
        raise InvalidInputError(
            f"predictions and labels must have equal lengths, got {pred.shape[0]} and {y.shape[0]}"
        )
    return pred == y


def compute_accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of correctly classified samples, Rony 2020 eq. 2.1 (without the ×100).

    Args:
        predictions: ``(N,)`` predicted class indices, or ``(N, C)`` scores whose
            argmax is the prediction (ties go to the lowest class index).
        labels: ``(N,)`` true class indices.

    Returns:
        Accuracy in [0, 1].
    """
    return float(np.mean(_correct(predictions, labels)))


def _vector(arr: np.ndarray, name: str) -> np.ndarray:
    """``(N,)`` from ``(N,)`` or ``(N, 1)``."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must have shape (N,) for one class, got {arr.shape}")
    return arr


def _binary_scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _vector(as_float_array(scores, "scores"), "scores")
    y = _vector(as_float_array(labels, "labels"), "labels")
    if s.shape != y.shape:
        raise InvalidInputError(
            f"scores and labels must have equal lengths, got {s.shape[0]} and {y.shape[0]}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInputError("labels must be 0/1 or bool for average precision")
    y = y.astype(bool)
    if not y.any():
        raise InvalidInputError("average precision is undefined without positives; got none")
    return s, y


def compute_average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision of one class: ``sum_n (R_n - R_{n-1}) P_n`` (non-interpolated).

    Rony 2020, eq. 2.2 (``AP_k``); one operating point per distinct score, tied
    samples entering together (see the module docstring), as
    ``sklearn.metrics.average_precision_score``.

    Args:
        scores: ``(N,)`` finite scores, higher = more likely positive.
        labels: ``(N,)`` 0/1 labels with at least one positive.

    Returns:
        AP in [0, 1].
    """
    s, y = _binary_scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    called = np.flatnonzero(last_of_run) + 1.0
    precision = tp / called
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_gain * precision))


def _scores_and_onehot(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C)`` scores and ``(N, C)`` 0/1 labels from class indices or multi-label 0/1."""
    s = as_float_array(scores, "scores")
    if s.ndim != 2:
        raise InvalidInputError(f"scores must have shape (N, C), got {s.shape}")
    y = as_float_array(labels, "labels")
    if y.ndim == 1:
        idx = _class_indices(y, "labels")
        if idx.max() >= s.shape[1]:
            raise InvalidInputError(
                f"labels hold class {idx.max()} but scores have only {s.shape[1]} classes"
            )
        y = np.eye(s.shape[1])[idx]
    if y.shape != s.shape:
        raise InvalidInputError(
            f"labels must be (N,) class indices or (N, C) 0/1 like scores {s.shape}, got {y.shape}"
        )
    return s, y


def compute_per_class_ap(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """One-vs-rest AP of every class (Rony 2020, eq. 2.2, the ``AP_k``).

    Args:
        scores: ``(N, C)`` finite class scores.
        labels: ``(N,)`` class indices (multi-class) or ``(N, C)`` 0/1 (multi-label,
            e.g. Pascal VOC). Every class needs at least one positive.

    Returns:
        ``(C,)`` float64 array of APs.
    """
    s, y = _scores_and_onehot(scores, labels)
    missing = np.flatnonzero(y.sum(axis=0) == 0)
    if missing.size:
        raise InvalidInputError(
            f"classes {missing.tolist()} have no positive sample, so their AP is undefined; "
            "evaluate on data where every class occurs or select the classes first"
        )
    return np.array([compute_average_precision(s[:, k], y[:, k]) for k in range(s.shape[1])])


def compute_map(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mean average precision over classes, Rony 2020 eq. 2.2 (without the ×100).

    Args:
        scores: ``(N, C)`` finite class scores.
        labels: ``(N,)`` class indices or ``(N, C)`` 0/1 multi-label targets.

    Returns:
        ``mean_k AP_k`` in [0, 1].
    """
    return float(np.mean(compute_per_class_ap(scores, labels)))


class AccuracyMetric:
    """Accumulates correct and total counts over batches; :meth:`aggregate` gives eq. 2.1."""

    def __init__(self) -> None:
        self._correct = 0
        self._total = 0

    def __call__(self, predictions: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch: ``(B,)`` indices or ``(B, C)`` scores, and ``(B,)`` true indices."""
        correct = _correct(predictions, labels)
        self._correct += int(correct.sum())
        self._total += correct.size

    def aggregate(self) -> float:
        """Accuracy in [0, 1] over everything seen since the last :meth:`reset`."""
        if self._total == 0:
            raise InvalidInputError("AccuracyMetric has no data; call it on at least one batch")
        return self._correct / self._total

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._correct = 0
        self._total = 0


class APMetric:
    """Accumulates scores and labels; :meth:`aggregate` gives AP (1-D scores) or mAP (2-D).

    ``(B,)`` scores with ``(B,)`` 0/1 labels give the AP of one class
    (:func:`compute_average_precision`); ``(B, C)`` scores with ``(B,)`` class
    indices or ``(B, C)`` 0/1 labels give the mAP (:func:`compute_map`).
    """

    def __init__(self) -> None:
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def __call__(self, scores: ArrayLike, labels: ArrayLike) -> None:
        """Add one batch of scores and labels (shapes as in the class docstring)."""
        s = as_float_array(scores, "scores")
        y = as_float_array(labels, "labels")
        if s.ndim not in (1, 2) or y.shape[0] != s.shape[0]:
            raise InvalidInputError(
                f"scores must be (B,) or (B, C) with as many labels; got {s.shape} and {y.shape}"
            )
        if self._scores and (
            s.shape[1:] != self._scores[0].shape[1:] or y.shape[1:] != self._labels[0].shape[1:]
        ):
            raise InvalidInputError(
                f"batch shapes {s.shape}, {y.shape} differ from the first batch's "
                f"{self._scores[0].shape}, {self._labels[0].shape}"
            )
        self._scores.append(s)
        self._labels.append(y)

    def aggregate(self) -> float:
        """AP or mAP in [0, 1] of everything accumulated since the last :meth:`reset`."""
        if not self._scores:
            raise InvalidInputError("APMetric has no data; call it on at least one batch")
        s, y = np.concatenate(self._scores), np.concatenate(self._labels)
        if s.ndim == 1:
            return compute_average_precision(s, y)
        return compute_map(s, y)

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._scores.clear()
        self._labels.clear()
