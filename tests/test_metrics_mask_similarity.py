"""Mask similarities of Thibeau-Sutre et al. 2020, section 2.4, on hand-worked volumes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.metrics import (
    MaskOverlap,
    cosine_similarity,
    intra_inter_similarity,
    mask_overlap,
    mean_offdiagonal,
    prob_cnn,
    roi_vector,
    similarity_matrix,
    similarity_table,
)

# one slice of 2×4 voxels: background 0 and three ROIs
ATLAS = np.array([[[0, 1, 1, 2], [2, 2, 3, 3]]])
MASK = np.array([[[0.0, 0.5, 1.0, 0.0], [1.0, 0.4, 0.2, 0.6]]])
# ROI 1: 1 − m = 0.5, 0 -> 0.25; ROI 2: 1, 0, 0.6 -> 1.6 / 3; ROI 3: 0.8, 0.4 -> 0.6
MASK_ROIS = [0.25, 1.6 / 3, 0.6]


def test_roi_vector_is_the_mean_of_one_minus_the_mask_per_roi() -> None:
    np.testing.assert_allclose(roi_vector(MASK, ATLAS), MASK_ROIS)
    # torch inputs, the same numbers
    np.testing.assert_allclose(roi_vector(torch.tensor(MASK), torch.tensor(ATLAS)), MASK_ROIS)
    # a mask of ones perturbs nothing, a mask of zeros everything
    np.testing.assert_allclose(roi_vector(np.ones_like(MASK), ATLAS), [0, 0, 0])
    np.testing.assert_allclose(roi_vector(np.zeros_like(MASK), ATLAS), [1, 1, 1])


def test_roi_vector_region_ids_and_batches() -> None:
    np.testing.assert_allclose(roi_vector(MASK, ATLAS, region_ids=[3, 1]), [0.6, 0.25])
    # the background is an ROI only when asked for: its single voxel has m = 0
    np.testing.assert_allclose(roi_vector(MASK, ATLAS, region_ids=[0, 2]), [1.0, 1.6 / 3])
    batch = np.stack([MASK, np.ones_like(MASK)])[:, None]  # (2, 1, 1, 2, 4)
    np.testing.assert_allclose(roi_vector(batch, ATLAS), [MASK_ROIS, [0, 0, 0]])


@pytest.mark.parametrize(
    ("mask", "atlas", "kwargs", "match"),
    [
        (MASK, ATLAS, {"region_ids": [1, 7]}, "do not occur"),
        (MASK, ATLAS, {"region_ids": [1, 1]}, "repeat"),
        (MASK * 2, ATLAS, {}, r"\[0, 1\]"),
        (MASK, ATLAS.astype(float), {}, "integer atlas"),
        (MASK, -ATLAS, {}, "non-negative"),
        (MASK, np.zeros_like(ATLAS), {}, "no region"),
        (MASK[:, :, :3], ATLAS, {}, "must be"),
    ],
)
def test_roi_vector_rejects_bad_input(mask, atlas, kwargs, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        roi_vector(mask, atlas, **kwargs)


def test_cosine_similarity_hand_worked() -> None:
    assert cosine_similarity([1, 0, 1], [1, 1, 0]) == pytest.approx(0.5)
    assert cosine_similarity([1, 0], [0, 3]) == pytest.approx(0.0)
    assert cosine_similarity([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="zero vector"):
        cosine_similarity([0, 0], [1, 0])
    with pytest.raises(InvalidInputError, match="equal length"):
        cosine_similarity([1, 0], [1, 0, 0])


def test_similarity_matrix_and_mean_offdiagonal() -> None:
    r = 1 / math.sqrt(2)
    sim = similarity_matrix([[1, 0], [1, 1], [0, 2]])
    np.testing.assert_allclose(sim, [[1, r, 0], [r, 1, r], [0, r, 1]], atol=1e-12)
    assert mean_offdiagonal(sim) == pytest.approx(4 * r / 6)
    # ordered pairs of a non-symmetric matrix (e.g. prob_CNN cross-applications)
    assert mean_offdiagonal([[1, 2], [4, 1]]) == pytest.approx(3.0)
    with pytest.raises(InvalidInputError, match="square"):
        mean_offdiagonal([[1.0]])


def test_intra_inter_similarity_uses_first_session_as_baseline() -> None:
    r = 1 / math.sqrt(2)
    vectors = [[0, 1], [1, 0], [1, 1], [1, 0], [0, 2]]
    subjects = ["B", "A", "A", "C", "B"]
    intra, inter = intra_inter_similarity(vectors, subjects)
    # A: cos([1,0],[1,1]) = 1/√2; B: cos([0,1],[0,2]) = 1; C has a single session
    assert intra == pytest.approx((r + 1) / 2)
    # baselines B [0,1], A [1,0], C [1,0]: pairs 0, 0, 1
    assert inter == pytest.approx(1 / 3)
    with pytest.raises(InvalidInputError, match="two sessions"):
        intra_inter_similarity([[1, 0], [0, 1]], ["A", "B"])
    with pytest.raises(InvalidInputError, match="one entry per vector"):
        intra_inter_similarity([[1, 0], [0, 1]], ["A"])


def test_similarity_table_is_a_named_pairwise_table() -> None:
    ones = np.ones_like(MASK)
    roi1 = np.where(ATLAS == 1, 0.0, 1.0)  # ROI vector [1, 0, 0]
    roi12 = np.where((ATLAS == 1) | (ATLAS == 2), 0.0, 1.0)  # [1, 1, 0]
    table = similarity_table({0.1: roi1, 0.5: roi12, 1: MASK}, ATLAS)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == [0.1, 0.5, 1] and list(table.columns) == [0.1, 0.5, 1]
    assert table.loc[0.1, 0.5] == pytest.approx(1 / math.sqrt(2))
    expected = 0.25 / np.linalg.norm(MASK_ROIS)
    assert table.loc[1, 0.1] == pytest.approx(expected)
    np.testing.assert_allclose(table.to_numpy(), table.to_numpy().T)
    np.testing.assert_allclose(np.diag(table.to_numpy()), 1.0)
    with pytest.raises(InvalidInputError, match="zero vector"):
        similarity_table({"a": ones, "b": MASK}, ATLAS)
    with pytest.raises(InvalidInputError, match="at least two"):
        similarity_table({"a": MASK}, ATLAS)


class _MeanLogit(nn.Module):
    """Logits (0, w · mean(x)): p(class 1) = sigmoid(w · mean(x)) exactly."""

    def __init__(self, voxels: int, w: float) -> None:
        super().__init__()
        self.linear = nn.Linear(voxels, 2)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[1] = w / voxels
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_prob_cnn_matches_the_analytic_probability() -> None:
    model = _MeanLogit(8, w=2.0).train()
    volumes = torch.stack([torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)])
    mask = torch.ones(2, 2, 2)
    mask[0] = 0.0  # half the voxels replaced by mu
    # mu = 1: x' = 1 − m on zeros (mean 0.5), x' = 1 on ones (mean 1)
    expected = (_sigmoid(2 * 0.5) + 1 - _sigmoid(2 * 1.0)) / 2
    assert prob_cnn(model, volumes, torch.tensor([1, 0]), mask) == pytest.approx(expected)
    assert prob_cnn(model, volumes, [1, 0], mask[None, None], batch_size=1) == pytest.approx(
        expected
    )
    assert model.training  # the mode is restored
    # mu = 0: x' = m · x: zeros stay 0 (p1 = 1/2), ones become m (mean 0.5)
    expected_mu0 = (0.5 + _sigmoid(2 * 0.5)) / 2
    assert prob_cnn(model, volumes, 1, mask, mu=0.0) == pytest.approx(expected_mu0)
    # one mask per volume: a mask of ones on the first leaves it untouched (p1 = 1/2)
    paired = torch.stack([torch.ones(1, 2, 2, 2), mask[None]])
    expected_paired = (0.5 + _sigmoid(2 * 1.0)) / 2
    assert prob_cnn(model, volumes, 1, paired) == pytest.approx(expected_paired)


def test_prob_cnn_rejects_bad_input() -> None:
    model = _MeanLogit(8, w=1.0)
    volumes = torch.zeros(3, 1, 2, 2, 2)
    with pytest.raises(InvalidInputError, match="mask must be"):
        prob_cnn(model, volumes, 1, torch.ones(2, 1, 2, 2, 2))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        prob_cnn(model, volumes, 1, torch.full((2, 2, 2), 1.5))
    with pytest.raises(InvalidInputError, match="targets"):
        prob_cnn(model, volumes, [1, 0], torch.ones(2, 2, 2))
    with pytest.raises(InvalidInputError, match="class indices in 0 … 1"):
        prob_cnn(model, volumes, 2, torch.ones(2, 2, 2))


def test_mask_overlap_hand_worked() -> None:
    truth = np.array([[[0, 1, 1, 0], [0, 0, 0, 0]]], dtype=bool)
    mask = np.array([[[1.0, 0.2, 1.0, 0.5], [1.0, 1.0, 0.96, 1.0]]])
    # perturbed {m <= 0.95} = voxels 1 and 3; truth = voxels 1 and 2: TP 1, FP 1, FN 1
    out = mask_overlap(mask, truth)
    assert isinstance(out, MaskOverlap)
    assert out.dice == pytest.approx(0.5)
    assert out.iou == pytest.approx(1 / 3)
    # 1 − m = 0.8 and 0 inside, 0.5 and 0.04 outside
    assert out.energy == pytest.approx(0.8 / 1.34)
    # 0.96 joins the perturbed region at threshold 0.97: TP 1, FP 2, FN 1
    loose = mask_overlap(torch.tensor(mask)[None, None], torch.tensor(truth), threshold=0.97)
    assert (loose.dice, loose.iou) == pytest.approx((2 / 5, 1 / 4))
    untouched = mask_overlap(np.ones_like(mask), truth)
    assert (untouched.dice, untouched.iou, untouched.energy) == (0.0, 0.0, 0.0)
    with pytest.raises(InvalidInputError, match="empty"):
        mask_overlap(mask, np.zeros_like(truth))
    with pytest.raises(InvalidInputError, match="threshold"):
        mask_overlap(mask, truth, threshold=1.0)
