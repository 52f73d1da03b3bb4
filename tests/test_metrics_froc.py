from __future__ import annotations

import numpy as np
import pytest
import torch

from wslbench.errors import InvalidInputError
from wslbench.metrics import (
    FROCMetric,
    MultiLesionFROCMetric,
    compute_froc,
    compute_froc_area,
    compute_froc_areas,
    extract_candidates,
    extract_candidates_batch,
    label_lesions,
    match_candidates,
)


def _gaussian(shape, centre, amp, sigma):
    r, c = np.mgrid[: shape[0], : shape[1]]
    return amp * np.exp(-((r - centre[0]) ** 2 + (c - centre[1]) ** 2) / (2 * sigma**2))


def _three_peaks_and_a_neighbour():
    shape = (64, 64)
    h = (
        _gaussian(shape, (10, 12), 1.0, 2.0)
        + _gaussian(shape, (40, 20), 0.8, 2.0)
        + _gaussian(shape, (30, 50), 0.6, 2.0)
        # a weaker bump 4 px right of the strongest peak: a 3x3 local maximum
        + _gaussian(shape, (10, 16), 0.5, 1.0)
    )
    return h


def test_extract_three_known_peaks_and_nms_suppresses_neighbour():
    h = _three_peaks_and_a_neighbour()
    wide = extract_candidates(h, min_distance=5, threshold=0.1)
    assert wide.shape == (3, 3)
    np.testing.assert_array_equal(wide[:, :2], [[10, 12], [40, 20], [30, 50]])
    np.testing.assert_allclose(wide[:, 2], h[[10, 40, 30], [12, 20, 50]])
    assert (np.diff(wide[:, 2]) < 0).all()

    narrow = extract_candidates(torch.tensor(h), min_distance=1, threshold=0.1)
    assert narrow.shape == (4, 3)
    assert [10, 16] in narrow[:, :2].tolist()

    top2 = extract_candidates(h, min_distance=5, threshold=0.1, max_candidates=2)
    np.testing.assert_array_equal(top2, wide[:2])
    assert extract_candidates(h, min_distance=5, threshold=2.0).shape == (0, 3)


def test_extract_plateau_keeps_one_and_batch_variant():
    h = np.zeros((8, 8))
    h[3, 3] = h[3, 4] = 1.0  # a 2-pixel plateau: both are local maxima, NMS keeps the first
    out = extract_candidates(h, min_distance=1, threshold=0.5)
    np.testing.assert_array_equal(out, [[3, 3, 1.0]])
    batch = np.stack([h, np.zeros((8, 8))])[:, None]
    outs = extract_candidates_batch(torch.tensor(batch), min_distance=2, threshold=0.5)
    assert len(outs) == 2
    np.testing.assert_array_equal(outs[0], [[3, 3, 1.0]])
    assert outs[1].shape == (0, 3)
    with pytest.raises(InvalidInputError, match="min_distance"):
        extract_candidates(h, min_distance=0)
    with pytest.raises(InvalidInputError, match="extract_candidates_batch"):
        extract_candidates(batch, min_distance=1)


def test_extract_3d():
    h = np.zeros((5, 6, 7))
    h[2, 3, 4] = 2.0
    h[0, 0, 0] = 1.0
    out = extract_candidates(h, min_distance=1, threshold=0.0)
    np.testing.assert_array_equal(out, [[2, 3, 4, 2.0], [0, 0, 0, 1.0]])


def _example():
    """Two images, three lesions (A, B in image 1; C in image 2)."""
    m1 = np.zeros((10, 10), dtype=bool)
    m1[1:3, 1:3] = True  # lesion A
    m1[7, 7] = True  # lesion B
    c1 = np.array(
        [
            [1, 1, 0.9],  # TP on A
            [2, 2, 0.8],  # second hit on A: ignored
            [5, 0, 0.7],  # FP
            [7, 7, 0.4],  # TP on B
        ]
    )
    m2 = np.zeros((10, 10), dtype=np.uint8)
    m2[4:6, 4:7] = 1  # lesion C
    c2 = np.array([[0, 9, 0.6], [5, 6, 0.5]])  # FP, TP on C
    return [c1, c2], [m1, m2]


def test_match_candidates_convention():
    (c1, _), (m1, _) = _example()
    match = match_candidates(c1, m1)
    assert match.n_lesions == 2
    np.testing.assert_array_equal(match.tp, [True, False, False, True])
    np.testing.assert_array_equal(match.fp, [False, False, True, False])
    np.testing.assert_array_equal(match.ignored, [False, True, False, False])
    assert match.lesion[0] == match.lesion[1] != match.lesion[3]
    # the TP is the highest-scoring hit even when it comes second
    swapped = match_candidates(c1[[1, 0, 2, 3]], m1)  # (2, 2, 0.8) now first
    np.testing.assert_array_equal(swapped.tp, [False, True, False, True])
    with pytest.raises(InvalidInputError, match="outside"):
        match_candidates(np.array([[10, 0, 1.0]]), m1)
    with pytest.raises(InvalidInputError, match=r"\(K, 3\)"):
        match_candidates(np.array([[1, 1]]), m1)


def test_label_lesions_connectivity_and_labelled_masks():
    m = np.zeros((5, 5), dtype=bool)
    m[1, 1] = m[2, 2] = True  # diagonal neighbours: one lesion (8-connectivity)
    m[4, 4] = True
    _, n = label_lesions(m)
    assert n == 2
    labelled = np.zeros((5, 5), dtype=np.int32)
    labelled[0, 0] = 7
    labelled[4, 4] = 7  # one disconnected lesion
    labelled[2, 2] = 3
    labels, n = label_lesions(labelled)
    assert n == 2 and labels[0, 0] == labels[4, 4] != labels[2, 2]
    match = match_candidates(np.array([[0, 0, 0.5], [4, 4, 0.9]]), labelled)
    np.testing.assert_array_equal(match.tp, [False, True])
    with pytest.raises(InvalidInputError, match="non-negative integers"):
        label_lesions(np.full((3, 3), 0.5))


def test_froc_hand_worked_two_images():
    cands, masks = _example()
    fp, sens, thr = compute_froc(cands, masks)
    # sorted TP/FP scores: .9 TP, .7 FP, .6 FP, .5 TP, .4 TP; 3 lesions, 2 images
    np.testing.assert_allclose(fp, [0, 0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(sens, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.7, 0.6, 0.5, 0.4])
    # area up to 1 FP/image = 1/3; then sensitivity 1 extended up to mu
    assert compute_froc_area(fp, sens, max_fp=10.0) == pytest.approx((1 / 3 + 9) / 10)
    assert compute_froc_area(fp, sens, max_fp=2.0) == pytest.approx((1 / 3 + 1) / 2)
    # cut inside the flat part
    assert compute_froc_area(fp, sens, max_fp=0.75) == pytest.approx(1 / 3)

    metric = FROCMetric(max_fp=10.0)
    metric(cands[0], masks[0])
    metric([cands[1]], [masks[1]])
    assert metric.aggregate() == pytest.approx((1 / 3 + 9) / 10)
    metric.reset()
    metric(cands, masks)
    np.testing.assert_allclose(metric.curve()[1], sens)


def test_froc_area_interpolation_and_validation():
    # a segment crossing mu is cut by linear interpolation: (0,0)-(4,1), mu = 2 -> 0.5*2*0.5 / 2
    assert compute_froc_area([0, 4], [0, 1], max_fp=2.0) == pytest.approx(0.25)
    # a curve starting after 0 gets (0, 0) prepended
    assert compute_froc_area([2], [0.5], max_fp=4.0) == pytest.approx((0.5 + 1.0) / 4)
    with pytest.raises(InvalidInputError, match="non-decreasing"):
        compute_froc_area([1, 0], [0, 1])
    with pytest.raises(InvalidInputError, match="positive"):
        compute_froc_area([0, 1], [0, 1], max_fp=0)
    with pytest.raises(InvalidInputError, match="at least one lesion"):
        compute_froc([np.array([[0, 0, 1.0]])], [np.zeros((3, 3), bool)])


def test_multi_lesion_froc_mean():
    cands, masks = _example()
    empty_hit = [np.zeros((4, 4), bool) for _ in range(2)]
    empty_hit[0][0, 0] = True  # one lesion nobody hits
    c_other = [np.array([[3, 3, 0.5]]), np.zeros((0, 3))]
    out = compute_froc_areas(
        {"exudates": cands, "red": c_other}, {"exudates": masks, "red": empty_hit}
    )
    assert out["exudates"] == pytest.approx((1 / 3 + 9) / 10)
    assert out["red"] == pytest.approx(0.0)
    assert out["mean"] == pytest.approx(((1 / 3 + 9) / 10) / 2)
    metric = MultiLesionFROCMetric(["a", "b"])
    metric(cands, {"a": masks, "b": masks})  # shared candidates
    assert metric.aggregate()["mean"] == pytest.approx((1 / 3 + 9) / 10)
    with pytest.raises(InvalidInputError, match="missing"):
        metric(cands, {"a": masks})
