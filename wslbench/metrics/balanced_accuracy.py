"""Balanced accuracy: the mean of the per-class recalls (Thibeau-Sutre 2020, 2.2.2–2.2.3).

The paper selects its architecture and its final model by "the best balanced
accuracy on the validation set" and reports it per fold (section 3.1)::

    BA = (1 / |K|) Σ_{k ∈ K} TP_k / N_k

where ``N_k`` is the number of samples whose true class is ``k`` and ``TP_k``
those of them predicted ``k``.

**Classes absent from the labels** (the paper has two classes, always both
present): the recall of a class with ``N_k = 0`` is 0/0, so ``K`` is the set of
classes that occur in ``labels``. A prediction of a class that never occurs in
the labels is still an error for the sample's true class; it only adds no term
of its own. This is ``sklearn.metrics.balanced_accuracy_score`` (which warns in
that case; here it is the documented rule, without warning).
"""

from __future__ import annotations

import numpy as np

from wslbench.errors import InvalidInputError
from wslbench.metrics._arrays import as_float_array
from wslbench.metrics.classification import ArrayLike, _class_indices, _predicted_classes

__all__ = ["compute_balanced_accuracy", "BalancedAccuracyMetric"]


def _class_counts(predictions: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, totals)`` per class index ``0 … max label``: correct predictions and samples."""
    pred = _predicted_classes(predictions)
    y = _class_indices(as_float_array(labels, "labels"), "labels")
    if pred.shape != y.shape:
        raise InvalidInputError(
            f"predictions and labels must have equal lengths, got {pred.shape[0]} and {y.shape[0]}"
        )
    size = int(y.max()) + 1
    totals = np.bincount(y, minlength=size)
    hits = np.bincount(y[pred == y], minlength=size)
    return hits, totals


def _balanced(hits: np.ndarray, totals: np.ndarray) -> float:
    present = totals > 0
    return float(np.mean(hits[present] / totals[present]))


def compute_balanced_accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Mean recall over the classes present in ``labels`` (Thibeau-Sutre 2020, 2.2.2).

    Args:
        predictions: ``(N,)`` predicted class indices, or ``(N, C)`` scores whose
            argmax is the prediction (ties go to the lowest class index).
        labels: ``(N,)`` true class indices.

    Returns:
        Balanced accuracy in [0, 1]; classes absent from ``labels`` are left out of
        the mean (see the module docstring).
    """
    return _balanced(*_class_counts(predictions, labels))


class BalancedAccuracyMetric:
    """Accumulates per-class hits and totals over batches; :meth:`aggregate` gives the BA.

    The result over several batches equals :func:`compute_balanced_accuracy` on
    their concatenation (a class absent from one batch may occur in another).
    """

    def __init__(self) -> None:
        self._hits = np.zeros(0, dtype=np.int64)
        self._totals = np.zeros(0, dtype=np.int64)

    def __call__(self, predictions: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch: ``(B,)`` indices or ``(B, C)`` scores, and ``(B,)`` true indices."""
        hits, totals = _class_counts(predictions, labels)
        size = max(self._totals.size, totals.size)
        self._hits = np.pad(self._hits, (0, size - self._hits.size))
        self._totals = np.pad(self._totals, (0, size - self._totals.size))
        self._hits[: hits.size] += hits
        self._totals[: totals.size] += totals

    def aggregate(self) -> float:
        """Balanced accuracy in [0, 1] over everything seen since the last :meth:`reset`."""
        if self._totals.sum() == 0:
            raise InvalidInputError(
                "BalancedAccuracyMetric has no data; call it on at least one batch"
            )
        return _balanced(self._hits, self._totals)

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._hits = np.zeros(0, dtype=np.int64)
        self._totals = np.zeros(0, dtype=np.int64)
