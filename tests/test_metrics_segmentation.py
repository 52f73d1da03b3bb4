"""Dice/IoU (Rony 2020, eqs. 2.3, 3.12–3.14, 4.14) and accuracy/AP/mAP (eqs. 2.1–2.2).

Classification metrics live here too: the brief of this change gave no separate test file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics import (
    AccuracyMetric,
    APMetric,
    DiceMetric,
    IoUMetric,
    compute_accuracy,
    compute_average_precision,
    compute_dice,
    compute_dice_per_image,
    compute_iou,
    compute_iou_per_image,
    compute_map,
    compute_per_class_ap,
    segmentation_counts,
)

# --------------------------------------------------------------------------- segmentation


def _four_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-worked batch of 2×3 masks.

    0: TP=1, FP=1, FN=1 -> Dice 1/2, IoU 1/3
    1: both empty       -> Dice = IoU = empty_score
    2: empty target, one predicted pixel -> 0
    3: perfect, two pixels -> 1
    """
    pred = torch.tensor(
        [
            [[1, 1, 0], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 1]],
            [[0, 0, 1], [0, 0, 1]],
        ]
    )
    target = torch.tensor(
        [
            [[1, 0, 0], [1, 0, 0]],
            [[0, 0, 0], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 0]],
            [[0, 0, 1], [0, 0, 1]],
        ]
    )
    return pred, target


def test_counts_by_hand():
    pred, target = _four_images()
    tp, fp, fn = segmentation_counts(pred, target)
    assert tp.shape == (4, 1) and tp.dtype == torch.int64
    assert tp[:, 0].tolist() == [1, 0, 0, 2]
    assert fp[:, 0].tolist() == [1, 0, 1, 0]
    assert fn[:, 0].tolist() == [1, 0, 0, 0]


def test_per_image_dice_and_iou_by_hand():
    pred, target = _four_images()
    assert compute_dice_per_image(pred, target).tolist() == [0.5, 1.0, 0.0, 1.0]
    iou = compute_iou_per_image(pred, target)
    torch.testing.assert_close(iou, torch.tensor([1 / 3, 1.0, 0.0, 1.0], dtype=torch.float64))
    excluded = compute_dice_per_image(pred, target, empty_score=float("nan"))
    assert math.isnan(excluded[1]) and excluded[[0, 2, 3]].tolist() == [0.5, 0.0, 1.0]
    assert compute_dice_per_image(pred, target, empty_score=0.0)[1] == 0.0


def test_reductions_by_hand():
    pred, target = _four_images()
    assert compute_dice(pred, target) == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    # both-empty image excluded from the mean
    assert compute_dice(pred, target, empty_score=float("nan")) == pytest.approx(0.5)
    # "mDice metastatic": only images 0 and 3 have a non-empty target
    assert compute_dice(pred, target, reduction="positive_image_mean") == pytest.approx(0.75)
    # over all pixels: TP=3, FP=2, FN=1
    assert compute_dice(pred, target, reduction="pixels") == pytest.approx(6 / 9)
    assert compute_iou(pred, target, reduction="pixels") == pytest.approx(3 / 6)
    assert compute_iou(pred, target, reduction="positive_image_mean") == pytest.approx(
        (1 / 3 + 1) / 2
    )


def test_all_empty_pixels_give_empty_score():
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    assert compute_dice(empty, empty, reduction="pixels") == 1.0
    assert math.isnan(compute_dice(empty, empty, reduction="pixels", empty_score=float("nan")))
    with pytest.raises(InvalidInputError, match="no image left"):
        compute_dice(empty, empty, empty_score=float("nan"))
    with pytest.raises(InvalidInputError, match="non-empty target"):
        compute_dice(empty, empty, reduction="positive_image_mean")


def _label_maps_to_one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).bool()


def _glas_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Background 0, benign 1, malignant 2.

    class 0: TP=1 FP=1 FN=1; class 1: TP=1 FP=2 FN=1; class 2: TP=3 FP=0 FN=1.
    """
    target = torch.tensor([[[0, 1, 1, 2], [0, 2, 2, 2]]])
    pred = torch.tensor([[[1, 1, 0, 2], [0, 2, 1, 2]]])
    return _label_maps_to_one_hot(pred, 3), _label_maps_to_one_hot(target, 3)


def test_eq_4_14_two_foreground_classes_in_one():
    pred, target = _glas_example()
    tp, fp, fn = segmentation_counts(pred, target)
    assert tp[0].tolist() == [1, 1, 3] and fp[0].tolist() == [1, 2, 0]
    assert fn[0].tolist() == [1, 1, 1]
    # eq. 4.14: 2 (1 + 3) / (2 (1 + 3) + 2 + 0 + 1 + 1) = 8 / 12
    glas = compute_dice(pred, target, reduction="pixels", classes=(1, 2))
    assert glas == pytest.approx(2 / 3)
    # ... which differs from the mean of the two per-class Dice values (0.4 and 6/7)
    per_class = compute_dice(pred, target, reduction="class_mean", classes=(1, 2))
    assert per_class == pytest.approx((0.4 + 6 / 7) / 2)
    assert per_class != pytest.approx(glas)
    # a single class is the binary Dice of that channel
    assert compute_dice(pred, target, reduction="pixels", classes=[2]) == pytest.approx(6 / 7)


def test_miou_over_classes_by_hand():
    pred, target = _glas_example()
    # IoU per class: 1/3, 1/4, 3/4
    assert compute_iou(pred, target, reduction="class_mean") == pytest.approx(4 / 9)
    # a class absent from prediction and target: excluded with NaN, scored 1 by default
    pad = torch.zeros(1, 1, 2, 4, dtype=torch.bool)
    pred4, target4 = torch.cat([pred, pad], 1), torch.cat([target, pad], 1)
    nan = float("nan")
    assert compute_iou(pred4, target4, "class_mean", empty_score=nan) == pytest.approx(4 / 9)
    assert compute_iou(pred4, target4, "class_mean") == pytest.approx(
        (1 / 3 + 1 / 4 + 3 / 4 + 1) / 4
    )


def test_dice_iou_relation_eq_3_14():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 2, 9, 9, generator=gen) > 0.5
    target = torch.rand(6, 2, 9, 9, generator=gen) > 0.6
    dice = compute_dice_per_image(pred, target)
    iou = compute_iou_per_image(pred, target)
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))
    assert (dice >= iou).all()


def test_matches_set_definition_eq_2_3_on_random_masks():
    rng = np.random.default_rng(1)
    pred = rng.random((5, 7, 6)) > 0.5
    target = rng.random((5, 7, 6)) > 0.5
    expected = [2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(pred, target)]
    np.testing.assert_allclose(compute_dice_per_image(pred, target).numpy(), expected)
    expected_iou = (pred & target).sum() / (pred | target).sum()
    assert compute_iou(pred, target, reduction="pixels") == pytest.approx(expected_iou)


@pytest.mark.parametrize("metric_cls", [DiceMetric, IoUMetric])
@pytest.mark.parametrize("reduction", ["image_mean", "positive_image_mean", "pixels", "class_mean"])
def test_accumulator_equals_one_shot(metric_cls, reduction):
    gen = torch.Generator().manual_seed(2)
    pred = torch.rand(7, 3, 5, 5, generator=gen) > 0.5
    target = torch.rand(7, 3, 5, 5, generator=gen) > 0.7
    target[2] = False
    fn = compute_dice if metric_cls is DiceMetric else compute_iou
    metric = metric_cls(reduction=reduction, classes=(1, 2))
    metric(pred[:3], target[:3])
    metric(pred[3:], target[3:])
    assert metric.aggregate() == pytest.approx(fn(pred, target, reduction, classes=(1, 2)))
    metric.reset()
    metric(pred[:1], target[:1])
    assert metric.aggregate() == pytest.approx(fn(pred[:1], target[:1], reduction, (1, 2)))
    assert metric.reduction == reduction and metric.classes == (1, 2)


def test_accumulator_errors():
    metric = DiceMetric()
    with pytest.raises(InvalidInputError, match="no data"):
        metric.aggregate()
    metric(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(InvalidInputError, match="channel"):
        metric(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(InvalidInputError, match="out of range"):
        DiceMetric(classes=(2,))(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="image_mean"):
        IoUMetric(reduction="mean")
    with pytest.raises(ConfigError, match="empty_score"):
        DiceMetric(empty_score=2.0)


def test_bad_masks_are_invalid_input():
    ok = torch.zeros(2, 4, 4)
    with pytest.raises(InvalidInputError, match="same shape"):
        compute_dice(ok, torch.zeros(2, 4, 5))
    with pytest.raises(InvalidInputError, match=r"\(B, H, W\)"):
        compute_dice(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(InvalidInputError, match="only 0 and 1"):
        compute_dice(ok + 0.5, ok)
    with pytest.raises(InvalidInputError, match="tensor or array"):
        compute_dice([[0, 1]], ok)
    with pytest.raises(InvalidInputError, match="distinct"):
        compute_dice(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), classes=(1, 1))


# ------------------------------------------------------------------------- classification


def test_accuracy_by_hand():
    assert compute_accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])  # tie -> class 0
    assert compute_accuracy(scores, [1, 0, 0]) == 1.0
    assert compute_accuracy(scores, torch.tensor([1, 0, 1])) == pytest.approx(2 / 3)


def test_accuracy_errors():
    with pytest.raises(InvalidInputError, match="equal lengths"):
        compute_accuracy([0, 1], [0])
    with pytest.raises(InvalidInputError, match="integer class indices"):
        compute_accuracy([0.5, 1], [0, 1])
    with pytest.raises(InvalidInputError, match="NaN"):
        compute_accuracy([[0.1, float("nan")]], [0])


def test_average_precision_by_hand():
    # ranks of the positives: 1 and 3 -> (1/1 + 2/3) / 2
    assert compute_average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # ties enter together: threshold 0.5 -> P=1/2, R=1/2; threshold 0.2 -> P=2/3, R=1
    assert compute_average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(7 / 12)
    assert compute_average_precision([0.5, 0.5, 0.2], [0, 1, 1]) == pytest.approx(7 / 12)
    assert compute_average_precision([0.1, 0.9], [0, 1]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.3
    labels[0] = True
    scores = np.round(rng.random(60) + 0.3 * labels, 1)  # many ties
    assert compute_average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores)
    )


def test_map_matches_sklearn_multiclass_and_multilabel():
    rng = np.random.default_rng(3)
    labels = np.r_[np.arange(4), rng.integers(0, 4, 36)]
    scores = rng.random((40, 4)) + 0.5 * np.eye(4)[labels]
    onehot = np.eye(4)[labels]
    per_class = compute_per_class_ap(scores, labels)
    np.testing.assert_allclose(per_class, average_precision_score(onehot, scores, average=None))
    assert compute_map(torch.from_numpy(scores), labels) == pytest.approx(per_class.mean())
    multilabel = (rng.random((40, 3)) < 0.4).astype(int)
    multilabel[0] = 1
    s3 = rng.random((40, 3))
    assert compute_map(s3, multilabel) == pytest.approx(
        average_precision_score(multilabel, s3, average="macro")
    )


def test_ap_errors():
    with pytest.raises(InvalidInputError, match="without positives"):
        compute_average_precision([0.1, 0.2], [0, 0])
    with pytest.raises(InvalidInputError, match=r"classes \[2\]"):
        compute_map(np.random.rand(4, 3), [0, 1, 1, 0])
    with pytest.raises(InvalidInputError, match="only 3 classes"):
        compute_map(np.random.rand(2, 3), [0, 3])
    with pytest.raises(InvalidInputError, match="0/1"):
        compute_average_precision([0.1, 0.2], [0, 2])


def test_accumulators_equal_one_shot():
    rng = np.random.default_rng(4)
    labels = np.r_[0, 1, 2, rng.integers(0, 3, 27)]
    scores = rng.random((30, 3))
    acc, ap, binary = AccuracyMetric(), APMetric(), APMetric()
    for sl in (slice(0, 7), slice(7, 30)):
        acc(scores[sl], labels[sl])
        ap(scores[sl], labels[sl])
        binary(scores[sl, 1], labels[sl] == 1)
    assert acc.aggregate() == pytest.approx(compute_accuracy(scores, labels))
    assert ap.aggregate() == pytest.approx(compute_map(scores, labels))
    assert binary.aggregate() == pytest.approx(compute_average_precision(scores[:, 1], labels == 1))
    with pytest.raises(InvalidInputError, match="differ"):
        ap(scores[:2, :2], labels[:2])
    acc.reset()
    ap.reset()
    for metric in (acc, ap):
        with pytest.raises(InvalidInputError, match="no data"):
            metric.aggregate()
