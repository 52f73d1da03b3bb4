"""Detection matching and P/R/F1 (Xue et al., section 4.2) on hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics.detection import (
    DetectionMetric,
    best_f1_threshold,
    compute_detection_scores,
    match_detections,
)


def test_basic_matching_counts_and_distances() -> None:
    gt = [(0, 0), (10, 10), (20, 20)]
    pred = [(1, 0), (10, 12), (50, 50)]
    m = match_detections(pred, gt, rho=3.0)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.pairs.tolist() == [[0, 0], [1, 1]]
    np.testing.assert_allclose(m.distances, [1.0, 2.0])
    assert m.unmatched_pred.tolist() == [2]
    assert m.unmatched_gt.tolist() == [2]


@pytest.mark.parametrize("method", ["hungarian", "greedy"])
def test_duplicate_prediction_is_one_tp_and_one_fp(method: str) -> None:
    m = match_detections([(5, 6), (6, 5)], [(5, 5)], rho=2.0, method=method)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)


@pytest.mark.parametrize("method", ["hungarian", "greedy"])
def test_distance_exactly_rho_is_not_a_match(method: str) -> None:
    # 3-4-5 triangle: the distance is exactly 5.
    m = match_detections([(0, 0)], [(3, 4)], rho=5.0, method=method)
    assert (m.tp, m.fp, m.fn) == (0, 1, 1)
    m = match_detections([(0, 0)], [(3, 4)], rho=5.0 + 1e-9, method=method)
    assert (m.tp, m.fp, m.fn) == (1, 0, 0)


def test_greedy_loses_a_match_that_hungarian_finds() -> None:
    # GT A=(0,0), B=(0,3); p=(0,1) is closest to A (1.0), also near B (2.0);
    # q=(0,-1.2) can only reach A (1.2; q-B = 4.2 >= rho).
    # Greedy takes p-A first, then q has nobody: 1 TP. Hungarian: p-B, q-A: 2 TP.
    pred, gt, rho = [(0, 1), (0, -1.2)], [(0, 0), (0, 3)], 2.5
    greedy = match_detections(pred, gt, rho, method="greedy")
    assert (greedy.tp, greedy.fp, greedy.fn) == (1, 1, 1)
    assert greedy.pairs.tolist() == [[0, 0]]
    hungarian = match_detections(pred, gt, rho, method="hungarian")
    assert (hungarian.tp, hungarian.fp, hungarian.fn) == (2, 0, 0)
    assert hungarian.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(hungarian.distances, [2.0, 1.2])


def test_hungarian_never_counts_a_forbidden_pair() -> None:
    # p sits on A; B and q are 1.9 from p/A and 2.2 from each other (isosceles).
    # Plain min-sum would pick p-A + q-B (0 + 2.2 < 1.9 + 1.9), whose q-B is forbidden
    # (>= rho = 2): 1 match. The right answer swaps them: p-B, q-A, 2 matches.
    cos = 1 - 2.2**2 / (2 * 1.9**2)
    b = (1.9, 0.0)
    q = (1.9 * cos, 1.9 * math.sqrt(1 - cos**2))
    m = match_detections([(0, 0), q], [(0, 0), b], rho=2.0)
    assert m.tp == 2
    assert m.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(m.distances, [1.9, 1.9])


def test_hungarian_minimises_total_distance_among_maximum_matchings() -> None:
    m = match_detections([(0, 1.5), (0, 0.5)], [(0, 0), (0, 2)], rho=3.0)
    assert m.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(m.distances.sum(), 1.0)


def test_hungarian_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        pred = rng.uniform(0, 6, size=(rng.integers(0, 5), 2))
        gt = rng.uniform(0, 6, size=(rng.integers(0, 5), 2))
        rho = 2.0
        best = (0, 0.0)
        small, large = sorted((len(pred), len(gt)))
        for perm in itertools.permutations(range(large), small):
            pairs = (
                enumerate(perm) if len(pred) <= len(gt) else ((i, j) for j, i in enumerate(perm))
            )
            d = [np.linalg.norm(pred[i] - gt[j]) for i, j in pairs]
            ok = [x for x in d if x < rho]
            if (len(ok), -sum(ok)) > (best[0], -best[1]):
                best = (len(ok), sum(ok))
        m = match_detections(pred, gt, rho)
        assert m.tp == best[0]
        np.testing.assert_allclose(m.distances.sum(), best[1], atol=1e-9)
        assert match_detections(pred, gt, rho, method="greedy").tp <= m.tp
        assert len(set(m.pairs[:, 0])) == m.tp and len(set(m.pairs[:, 1])) == m.tp


def test_empty_images_follow_the_documented_rules() -> None:
    s = compute_detection_scores([[]], [[]], rho=1.0)
    assert (s.tp, s.fp, s.fn) == (0, 0, 0)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    s = compute_detection_scores([[(1, 1)]], [np.zeros((0, 2))], rho=1.0)
    assert (s.tp, s.fp, s.fn) == (0, 1, 0)
    assert (s.precision, s.recall, s.f1) == (0.0, 1.0, 0.0)
    s = compute_detection_scores([np.zeros((0, 2))], [[(1, 1)]], rho=1.0)
    assert (s.tp, s.fp, s.fn) == (0, 0, 1)
    assert (s.precision, s.recall, s.f1) == (1.0, 0.0, 0.0)
    assert math.isnan(s.mean_distance)
    s = compute_detection_scores([[]], [[(1, 1)]], rho=1.0, empty_score=float("nan"))
    assert math.isnan(s.precision) and s.recall == 0.0 and s.f1 == 0.0
    assert math.isnan(s.mean_precision)


def test_pooled_and_per_image_scores_hand_computed() -> None:
    preds = [
        [(0, 0), (10, 10)],  # both match: tp 2
        [(5, 5), (30, 30), (40, 40)],  # one match: tp 1, fp 2
        np.zeros((0, 2)),  # nothing found: fn 3
    ]
    gts = [
        [(0, 1), (10, 10)],
        [(5, 6)],
        [(1, 1), (2, 20), (20, 2)],
    ]
    s = compute_detection_scores(preds, gts, rho=2.0)
    assert (s.tp, s.fp, s.fn) == (3, 2, 3)
    assert s.precision == pytest.approx(3 / 5)
    assert s.recall == pytest.approx(3 / 6)
    assert s.f1 == pytest.approx(6 / 11)  # 2PR/(P+R) = 2·0.6·0.5/1.1
    assert s.per_image_tp.tolist() == [2, 1, 0]
    assert s.per_image_fp.tolist() == [0, 2, 0]
    assert s.per_image_fn.tolist() == [0, 0, 3]
    np.testing.assert_allclose(s.per_image_precision, [1.0, 1 / 3, 1.0])  # no prediction: 1
    np.testing.assert_allclose(s.per_image_recall, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(s.per_image_f1, [1.0, 0.5, 0.0])
    assert s.mean_precision == pytest.approx(7 / 9)
    assert s.mean_recall == pytest.approx(2 / 3)
    assert s.mean_f1 == pytest.approx(0.5)
    assert s.mean_distance == pytest.approx((1 + 0 + 1) / 3)
    assert s.mean_absolute_count_error == pytest.approx((0 + 2 + 3) / 3)
    assert s.n_images == 3
    assert s.as_dict()["f1"] == pytest.approx(6 / 11)


def test_accumulator_equals_one_shot_and_resets() -> None:
    rng = np.random.default_rng(1)
    preds = [rng.uniform(0, 50, size=(rng.integers(0, 8), 2)) for _ in range(7)]
    gts = [rng.uniform(0, 50, size=(rng.integers(0, 8), 2)) for _ in range(7)]
    one_shot = compute_detection_scores(preds, gts, rho=6.0, method="greedy")
    metric = DetectionMetric(rho=6.0, method="greedy")
    metric(torch.as_tensor(preds[0]), torch.as_tensor(gts[0]))  # one image as tensors
    metric(preds[1:4], gts[1:4])
    for p, g in zip(preds[4:], gts[4:]):
        metric(p, g)
    acc = metric.aggregate()
    assert (acc.tp, acc.fp, acc.fn) == (one_shot.tp, one_shot.fp, one_shot.fn)
    assert acc.f1 == one_shot.f1
    np.testing.assert_array_equal(acc.per_image_f1, one_shot.per_image_f1)
    assert acc.mean_distance == pytest.approx(one_shot.mean_distance)
    metric.reset()
    with pytest.raises(InvalidInputError, match="no data"):
        metric.aggregate()


def test_best_f1_threshold_hand_worked() -> None:
    # Keep all: tp 2, fp 1 -> F1 0.8; drop 0.2: F1 1; drop 0.5 too: 2/3; keep none: 0.
    cands = [np.array([[0, 0, 0.9], [10, 10, 0.5], [20, 20, 0.2]])]
    t, f1 = best_f1_threshold(cands, [[(0, 0), (10, 10)]], rho=2.0)
    assert t == pytest.approx(0.35)  # midway between the scores it separates
    assert f1 == 1.0
    t, f1 = best_f1_threshold(cands, [[(0, 0), (10, 10)]], rho=2.0, max_thresholds=2)
    assert t < 0.2 and f1 == pytest.approx(0.8)  # only keep-all and keep-none tried
    t, f1 = best_f1_threshold(cands, [[(0, 0), (10, 10), (20, 20)]], rho=2.0)
    assert t < 0.2 and f1 == 1.0  # keep all, just below the lowest score


@pytest.mark.parametrize(
    ("pred", "gt", "rho", "match"),
    [
        ([(0, np.nan)], [(0, 0)], 1.0, "NaN"),
        ([(0, 0, 0)], [(0, 0)], 1.0, "shape"),
        ([(0, 0)], [0, 0], 1.0, "shape"),
        ([(0, 0)], [(0, 0)], -1.0, "rho"),
        ([(0, 0)], [(0, 0)], 0.0, "rho"),
        ([(0, 0)], [(0, 0)], float("nan"), "rho"),
        ([(0, 0)], [(0, 0)], "3", "rho"),
    ],
)
def test_invalid_inputs_raise(pred: object, gt: object, rho: object, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        match_detections(pred, gt, rho)


def test_invalid_sequences_and_options_raise() -> None:
    with pytest.raises(InvalidInputError, match="one of each"):
        compute_detection_scores([[(0, 0)]], [[(0, 0)], []], rho=1.0)
    with pytest.raises(InvalidInputError, match="wrap a single image"):
        compute_detection_scores(np.zeros((2, 2)), [[(0, 0)]], rho=1.0)
    with pytest.raises(InvalidInputError, match="one of each"):
        DetectionMetric(rho=1.0)([np.zeros((1, 2))], np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="hungarian"):
        match_detections([(0, 0)], [(0, 0)], 1.0, method="nearest")
    with pytest.raises(InvalidInputError, match="empty_score"):
        DetectionMetric(rho=1.0, empty_score=2.0)
    with pytest.raises(InvalidInputError, match="at least one candidate"):
        best_f1_threshold([np.zeros((0, 3))], [[(0, 0)]], rho=1.0)
