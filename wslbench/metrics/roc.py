"""Image-level ROC analysis: AUC, ROC curve, DeLong confidence intervals and tests.

Quellec et al. 2017, section 5.5: image-level performance is the area ``A_z``
under the ROC curve; section 6 reports its 95 % confidence interval "with
DeLong et al. (1988)'s method". The AUC is the Mann–Whitney statistic
(DeLong 1988, eq. 2) with ties counted as 1/2; its variance comes from
DeLong's structural components ``V10`` (one per positive) and ``V01`` (one per
negative), DeLong 1988 eqs. 3–5, computed with the O(n log n) mid-rank
algorithm of Sun & Xu (2014, IEEE Signal Process. Lett. 21(11)).

Scores are "higher means more likely positive"; labels are 0/1 (or bool).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch

from wslbench.errors import InvalidInputError
from wslbench.metrics._arrays import as_float_array

__all__ = [
    "compute_roc_auc",
    "compute_roc_curve",
    "delong_ci",
    "delong_test",
    "ROCAUCMetric",
]

ArrayLike = np.ndarray | torch.Tensor | list[float] | tuple[float, ...]


def _as_vector(values: object, name: str) -> np.ndarray:
    """``values`` as a finite 1-D float64 array; ``(N, 1)`` is accepted and flattened."""
    arr = as_float_array(values, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must have shape (N,) or (N, 1), got {arr.shape}")
    return arr


def _check_scores_labels(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(scores float64 (N,), labels bool (N,))`` with both classes present."""
    s = _as_vector(scores, "scores")
    y = _as_vector(labels, "labels")
    if s.shape != y.shape:
        raise InvalidInputError(
            f"scores and labels must have equal lengths, got {s.shape[0]} and {y.shape[0]}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        bad = np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]
        raise InvalidInputError(f"labels must be 0/1 or bool, got values such as {bad.tolist()}")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise InvalidInputError(
            f"ROC analysis needs both classes, got {n_pos} positives and {y.size - n_pos} negatives"
        )
    return s, y


def _midrank(x: np.ndarray) -> np.ndarray:
    """1-based mid-ranks of ``x`` (tied values share the mean of their ranks)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.size
    # start of each run of equal values, and its (exclusive) end
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    mean_rank = 0.5 * (starts + ends - 1) + 1.0
    ranks_sorted = np.repeat(mean_rank, ends - starts)
    out = np.empty(n, dtype=np.float64)
    out[order] = ranks_sorted
    return out


def _structural_components(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC, ``V10`` (one per positive) and ``V01`` (one per negative), DeLong 1988 eq. 3.

    ``V10(X_i) = mean_j psi(X_i, Y_j)`` and ``V01(Y_j) = mean_i psi(X_i, Y_j)`` with
    ``psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise`` (Sun & Xu 2014, eqs. 9–12).
    """
    pos = scores[labels]
    neg = scores[~labels]
    m, n = pos.size, neg.size
    tx = _midrank(pos)
    ty = _midrank(neg)
    tz = _midrank(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return float(auc), v10, v01


def compute_roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve as the Mann–Whitney statistic, ties counted as 1/2.

    Quellec 2017, section 5.5 (``A_z``); DeLong 1988, eq. 2.

    Args:
        scores: ``(N,)`` finite scores, higher = more likely positive.
        labels: ``(N,)`` 0/1 labels; both classes must be present.

    Returns:
        The AUC in [0, 1].
    """
    s, y = _check_scores_labels(scores, labels)
    auc, _, _ = _structural_components(s, y)
    return auc


def compute_roc_curve(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve: one operating point per distinct score, from (0, 0) to (1, 1).

    A sample is called positive at threshold ``t`` when ``score >= t``. Thresholds
    decrease; the first is ``+inf`` (nothing called positive). Tied scores move
    the curve diagonally, so the trapezoidal area of the curve equals
    :func:`compute_roc_auc`.

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape ``(n_distinct_scores + 1,)``.
    """
    s, y = _check_scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = np.cumsum(~y_sorted)[last_of_run]
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    thresholds = np.r_[np.inf, s_sorted[last_of_run]]
    return fpr, tpr, thresholds


def _normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def delong_ci(
    scores: ArrayLike, labels: ArrayLike, alpha: float = 0.95
) -> tuple[float, float, float, float]:
    """AUC with DeLong's variance and a normal-approximation confidence interval.

    ``var(AUC) = S10 / m + S01 / n`` where ``S10``, ``S01`` are the sample variances
    (denominator ``m - 1``, ``n - 1``) of the structural components ``V10`` and
    ``V01`` (DeLong 1988, eqs. 4–5). The interval is ``AUC ± z · sqrt(var)``
    clipped to [0, 1], ``z`` the ``(1 + alpha) / 2`` normal quantile, as in the
    95 % interval Quellec 2017 reports in section 6.

    Args:
        scores: ``(N,)`` finite scores.
        labels: ``(N,)`` 0/1 labels with at least 2 positives and 2 negatives.
        alpha: confidence level in (0, 1), e.g. 0.95 for a 95 % interval.

    Returns:
        ``(auc, low, high, variance)``.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha is a confidence level and must be in (0, 1), got {alpha}")
    s, y = _check_scores_labels(scores, labels)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise InvalidInputError(
            f"DeLong's variance needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    auc, v10, v01 = _structural_components(s, y)
    var = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    z = NormalDist().inv_cdf(0.5 + alpha / 2.0)
    half = z * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half), var


def delong_test(scores_a: ArrayLike, scores_b: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """DeLong's test that two correlated ROC curves (same samples) have equal AUC.

    ``z = (AUC_a − AUC_b) / sqrt(var_a + var_b − 2 cov_ab)`` with the covariance of
    the structural components (DeLong 1988, eqs. 6–7); two-sided p-value from the
    standard normal. When the difference and its variance are both zero (e.g.
    identical scores) the result is ``(0.0, 1.0)``; a nonzero difference with zero
    variance gives ``(±inf, 0.0)``.

    Args:
        scores_a: ``(N,)`` scores of the first detector.
        scores_b: ``(N,)`` scores of the second detector on the same samples.
        labels: ``(N,)`` 0/1 labels with at least 2 positives and 2 negatives.

    Returns:
        ``(z, p)``.
    """
    sa, y = _check_scores_labels(scores_a, labels)
    sb, _ = _check_scores_labels(scores_b, labels)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise InvalidInputError(
            f"DeLong's test needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    auc_a, v10_a, v01_a = _structural_components(sa, y)
    auc_b, v10_b, v01_b = _structural_components(sb, y)
    s10 = np.cov(np.stack([v10_a, v10_b]), ddof=1)
    s01 = np.cov(np.stack([v01_a, v01_b]), ddof=1)
    cov = s10 / m + s01 / n
    var_diff = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = auc_a - auc_b
    if var_diff <= 1e-15:
        if abs(diff) <= 1e-12:
            return 0.0, 1.0
        return math.copysign(math.inf, diff), 0.0
    z = diff / math.sqrt(var_diff)
    return float(z), _normal_two_sided_p(z)


class ROCAUCMetric:
    """Accumulates scores and labels over batches; :meth:`aggregate` gives the AUC.

    Example:
        >>> metric = ROCAUCMetric()
        >>> for scores, labels in batches:  # doctest: +SKIP
        ...     metric(scores, labels)
        >>> auc = metric.aggregate()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def __call__(self, scores: ArrayLike, labels: ArrayLike) -> None:
        """Add one batch of ``(B,)`` (or ``(B, 1)``) scores and ``(B,)`` 0/1 labels."""
        s = _as_vector(scores, "scores")
        y = _as_vector(labels, "labels")
        if s.shape != y.shape:
            raise InvalidInputError(
                f"scores and labels must have equal lengths, got {s.shape[0]} and {y.shape[0]}"
            )
        if not np.isfinite(s).all():
            raise InvalidInputError("scores contain NaN or Inf; expected finite values")
        if not np.isin(y, (0.0, 1.0)).all():
            raise InvalidInputError("labels must be 0/1 or bool")
        self._scores.append(s)
        self._labels.append(y)

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._scores:
            raise InvalidInputError("ROCAUCMetric has no data; call it on at least one batch")
        return np.concatenate(self._scores), np.concatenate(self._labels)

    def aggregate(self) -> float:
        """AUC of everything accumulated since the last :meth:`reset`."""
        return compute_roc_auc(*self._buffers())

    def confidence_interval(self, alpha: float = 0.95) -> tuple[float, float, float, float]:
        """``(auc, low, high, variance)`` by :func:`delong_ci` on the accumulated data."""
        s, y = self._buffers()
        return delong_ci(s, y, alpha)

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._scores.clear()
        self._labels.clear()
