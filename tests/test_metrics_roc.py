from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from wslbench.errors import InvalidInputError
from wslbench.metrics import (
    ROCAUCMetric,
    compute_roc_auc,
    compute_roc_curve,
    delong_ci,
    delong_test,
)

# 3 positives, 3 negatives, one tie (0.6 vs 0.6).
SCORES = np.array([0.9, 0.6, 0.4, 0.6, 0.3, 0.1])
LABELS = np.array([1, 1, 1, 0, 0, 0])


def _direct_components(scores: np.ndarray, labels: np.ndarray):
    """O(m·n) structural components straight from DeLong 1988, eq. 3."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)


def _direct_var(scores, labels):
    auc, v10, v01 = _direct_components(scores, labels)
    m, n = v10.size, v01.size
    return auc, np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n


def _random_case(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    labels[:2], labels[2:4] = 1, 0
    # rounded scores: many ties
    scores = np.round(rng.normal(size=n) + labels * 0.8, 1)
    return scores, labels


def test_auc_hand_worked_with_tie():
    # pairs won: 0.9 -> 3; 0.6 -> 2 + 1/2 (tie); 0.4 -> 2; total 7.5 / 9
    assert compute_roc_auc(SCORES, LABELS) == pytest.approx(7.5 / 9)
    assert compute_roc_auc(torch.tensor(SCORES), torch.tensor(LABELS).bool()) == pytest.approx(
        7.5 / 9
    )
    assert compute_roc_auc(-SCORES, LABELS) == pytest.approx(1.5 / 9)


def test_roc_curve_hand_worked():
    fpr, tpr, thr = compute_roc_curve(SCORES, LABELS)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.6, 0.4, 0.3, 0.1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(compute_roc_auc(SCORES, LABELS))


def test_delong_variance_hand_worked():
    # V10 = (1, 5/6, 2/3), V01 = (1/2, 1, 1) -> var = (1/36)/3 + (1/12)/3 = 1/27
    auc, low, high, var = delong_ci(SCORES, LABELS)
    assert auc == pytest.approx(7.5 / 9)
    assert var == pytest.approx(1 / 27)
    half = 1.959963984540054 * math.sqrt(1 / 27)
    assert low == pytest.approx(max(0.0, auc - half))
    assert high == pytest.approx(min(1.0, auc + half))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_direct_computation_and_sklearn(seed):
    scores, labels = _random_case(seed)
    auc, low, high, var = delong_ci(scores, labels, alpha=0.9)
    auc_direct, var_direct = _direct_var(scores, labels)
    assert auc == pytest.approx(auc_direct, abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert var == pytest.approx(var_direct, rel=1e-10)
    assert low < auc < high
    half90 = 1.6448536269514722 * math.sqrt(var)
    assert high - low == pytest.approx(2 * half90)


def test_delong_test_identical_and_different():
    scores, labels = _random_case(3, n=80)
    z, p = delong_test(scores, scores, labels)
    assert (z, p) == (0.0, 1.0)

    rng = np.random.default_rng(5)
    noisy = rng.normal(size=scores.size)
    z, p = delong_test(scores, noisy, labels)
    # independent O(n²) computation of the same statistic
    auc_a, v10a, v01a = _direct_components(scores, labels)
    auc_b, v10b, v01b = _direct_components(noisy, labels)
    m, n = v10a.size, v01a.size
    s10 = np.cov(v10a, v10b)
    s01 = np.cov(v01a, v01b)
    cov = s10 / m + s01 / n
    z_direct = (auc_a - auc_b) / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert z == pytest.approx(z_direct, rel=1e-10)
    assert p == pytest.approx(math.erfc(abs(z_direct) / math.sqrt(2)), rel=1e-10)
    assert z > 0 and p < 0.05
    z_swapped, p_swapped = delong_test(noisy, scores, labels)
    assert z_swapped == pytest.approx(-z) and p_swapped == pytest.approx(p)


def test_invalid_inputs():
    with pytest.raises(InvalidInputError, match="both classes"):
        compute_roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(InvalidInputError, match="equal lengths"):
        compute_roc_auc([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(InvalidInputError, match="NaN"):
        compute_roc_auc([0.1, float("nan")], [1, 0])
    with pytest.raises(InvalidInputError, match="0/1"):
        compute_roc_auc([0.1, 0.2], [2, 0])
    with pytest.raises(InvalidInputError, match="at least 2"):
        delong_ci([0.1, 0.2, 0.3], [1, 0, 0])
    with pytest.raises(InvalidInputError, match="confidence level"):
        delong_ci(SCORES, LABELS, alpha=95)
    with pytest.raises(InvalidInputError, match="equal lengths"):
        delong_test(SCORES, SCORES[:-1], LABELS)


def test_rocauc_metric_accumulates_and_resets():
    scores, labels = _random_case(4)
    metric = ROCAUCMetric()
    with pytest.raises(InvalidInputError, match="no data"):
        metric.aggregate()
    for start in range(0, scores.size, 16):
        metric(torch.tensor(scores[start : start + 16])[:, None], labels[start : start + 16])
    assert metric.aggregate() == pytest.approx(roc_auc_score(labels, scores))
    assert metric.confidence_interval() == pytest.approx(delong_ci(scores, labels))
    metric.reset()
    metric(SCORES, LABELS)
    assert metric.aggregate() == pytest.approx(7.5 / 9)
