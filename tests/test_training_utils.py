"""Schedules and SGD (Rony 2020, 2.1.3, Appendix II), k-fold splits (2.1.2.2) and the
histology augmentations (2.1.3.1)."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch

from wslbench.data.splits import format_mean_std, kfold_splits, mean_std
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.training import (
    CosineSchedule,
    HistologyAugmentRecord,
    RandomHistologyAugment,
    StepSchedule,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_images,
    augment_masks,
    lambda_lr,
    sgd_nesterov,
)

# ----------------------------------------------------------------------------- schedules


def test_cosine_start_middle_end_follow_the_formula():
    sched = CosineSchedule(base_lr=0.01, total_steps=10)
    assert sched.lr_at(0) == pytest.approx(0.01)
    assert sched.lr_at(5) == pytest.approx(0.005)
    assert sched.lr_at(10) == pytest.approx(0.0, abs=1e-15)
    assert sched.lr_at(25) == pytest.approx(0.0, abs=1e-15)  # stays at the end, no restart
    # eta_t = 1/2 (1 + cos(pi t / T)) eta_0 (He et al. 2019)
    assert sched.lr_at(2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)) * 0.01)
    values = [sched.lr_at(t) for t in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_with_floor():
    sched = CosineSchedule(base_lr=1.0, total_steps=4, min_lr=0.01)
    assert sched.lr_at(0) == pytest.approx(1.0)
    assert sched.lr_at(2) == pytest.approx(0.505)
    assert sched.lr_at(4) == pytest.approx(0.01)


def test_step_schedule_of_the_unet_and_weakly_supervised_runs():
    unet = StepSchedule(base_lr=0.1, step_size=320)  # 2.1.3.2: /10 every 320 of 960 epochs
    assert [unet.lr_at(t) for t in (0, 319, 320, 639, 640, 959)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    wsl = StepSchedule(base_lr=0.01, step_size=80)  # 2.1.3.1: 0.01 then 0.001, 160 epochs
    assert wsl.lr_at(79) == pytest.approx(0.01) and wsl.lr_at(80) == pytest.approx(0.001)


def test_lambda_lr_follows_the_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    head = torch.nn.Parameter(torch.zeros(1))
    sched = CosineSchedule(base_lr=0.01, total_steps=6)
    opt = sgd_nesterov([{"params": [param]}, {"params": [head], "lr": 0.1}], lr=0.01)
    scheduler = lambda_lr(opt, sched)
    for t in range(8):
        assert opt.param_groups[0]["lr"] == pytest.approx(sched.lr_at(t))
        assert opt.param_groups[1]["lr"] == pytest.approx(10 * sched.lr_at(t))
        opt.step()
        scheduler.step()


def test_sgd_nesterov_update_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = sgd_nesterov([p], lr=0.1)
    group = opt.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    # loss = 2 p -> grad 2; with weight decay g = 2 + 1e-4 p
    expected, buf = 1.0, None
    for _ in range(2):
        opt.zero_grad()
        (2 * p).sum().backward()
        opt.step()
        g = 2 + 1e-4 * expected
        buf = g if buf is None else 0.9 * buf + g
        expected -= 0.1 * (g + 0.9 * buf)
        assert p.item() == pytest.approx(expected, rel=1e-6)


def test_schedule_errors():
    with pytest.raises(ConfigError):
        CosineSchedule(base_lr=0.0, total_steps=10)
    with pytest.raises(ConfigError):
        CosineSchedule(base_lr=0.1, total_steps=0)
    with pytest.raises(ConfigError, match="min_lr"):
        CosineSchedule(base_lr=0.1, total_steps=5, min_lr=0.2)
    with pytest.raises(ConfigError):
        StepSchedule(base_lr=0.1, step_size=0)
    with pytest.raises(InvalidInputError, match="step must be an integer >= 0"):
        StepSchedule(base_lr=0.1, step_size=3).lr_at(-1)
    with pytest.raises(ConfigError, match="momentum"):
        sgd_nesterov([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.0)
    with pytest.raises(ConfigError, match="schedule"):
        lambda_lr(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), lambda t: 1.0)


# -------------------------------------------------------------------------------- splits


def _check_partition(folds, n):
    test = folds[0].test
    vals = []
    for fold in folds:
        np.testing.assert_array_equal(fold.test, test)  # fixed test set
        parts = [fold.train, fold.val, fold.test]
        joined = np.concatenate(parts)
        assert joined.size == n and np.unique(joined).size == n  # disjoint and covering
        assert all(part.dtype == np.int64 and (np.diff(part) > 0).all() for part in parts)
        vals.append(fold.val)
    all_val = np.concatenate(vals)
    assert np.unique(all_val).size == all_val.size  # validation folds are disjoint
    assert np.union1d(all_val, test).size == n


def test_stratified_folds_with_fixed_test_set():
    labels = np.array(["benign"] * 30 + ["in situ"] * 20 + ["invasive"] * 10)
    folds = kfold_splits(labels, n_splits=5, test_fraction=0.5, random_state=0)
    assert len(folds) == 5
    _check_partition(folds, 60)
    test_labels = labels[folds[0].test]
    # BACH protocol: half of each class in the test set
    assert [(test_labels == c).sum() for c in ("benign", "in situ", "invasive")] == [15, 10, 5]
    for fold in folds:
        val_counts = [(labels[fold.val] == c).sum() for c in ("benign", "in situ", "invasive")]
        assert val_counts == [3, 2, 1]  # 1/5 of the 15/10/5 left
        assert fold.train.size == 24


def test_uneven_counts_are_stratified_within_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 103)
    folds = kfold_splits(labels, n_splits=4, test_fraction=0.2, random_state=7)
    _check_partition(folds, 103)
    totals = np.bincount(labels, minlength=3)
    test_counts = np.bincount(labels[folds[0].test], minlength=3)
    assert np.all(np.abs(test_counts - 0.2 * totals) <= 1)
    rest = totals - test_counts
    for fold in folds:
        assert np.all(np.abs(np.bincount(labels[fold.val], minlength=3) - rest / 4) <= 1)


def test_groups_are_never_split():
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 6, 40)
    groups = np.repeat([f"wsi_{i:02d}" for i in range(40)], sizes)
    group_label = rng.integers(0, 2, 40)
    labels = np.repeat(group_label, sizes)
    labels[0] = 1 - labels[0]  # one slide with mixed item labels
    folds = kfold_splits(labels, n_splits=5, test_fraction=0.25, groups=groups, random_state=3)
    _check_partition(folds, labels.size)
    for fold in folds:
        sides = [set(groups[fold.train]), set(groups[fold.val]), set(groups[fold.test])]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    # proportions still roughly follow the labels
    test_frac = folds[0].test.size / labels.size
    assert 0.15 < test_frac < 0.35


def test_deterministic_by_seed_and_test_set_independent_of_k():
    labels = np.arange(50) % 2
    a = kfold_splits(labels, n_splits=5, random_state=11)
    b = kfold_splits(labels, n_splits=5, random_state=11)
    c = kfold_splits(labels, n_splits=5, random_state=12)
    for fa, fb in zip(a, b):
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    assert not np.array_equal(a[0].test, c[0].test)
    np.testing.assert_array_equal(a[0].test, kfold_splits(labels, 3, random_state=11)[0].test)


def test_no_test_set_for_data_with_an_official_one():
    labels = torch.tensor([0, 1] * 10)
    folds = kfold_splits(labels, n_splits=5, test_fraction=0.0)
    assert all(f.test.size == 0 and f.val.size == 4 for f in folds)
    _check_partition(folds, 20)


def test_split_errors():
    with pytest.raises(ConfigError, match="n_splits"):
        kfold_splits([0, 1, 0, 1], n_splits=1)
    with pytest.raises(ConfigError, match="test_fraction"):
        kfold_splits([0, 1, 0, 1], test_fraction=1.0)
    with pytest.raises(InvalidInputError, match="groups has 3"):
        kfold_splits([0, 1, 0, 1], n_splits=2, groups=[0, 0, 1])
    with pytest.raises(InvalidInputError, match="cannot fill"):
        kfold_splits([0, 1] * 4, n_splits=4, test_fraction=0.3, groups=[0, 0, 1, 1, 2, 2, 3, 3])
    with pytest.raises(InvalidInputError, match="1-D"):
        kfold_splits([])


def test_mean_std_and_format():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert mean_std(np.array([1.0, 2.0, 3.0, 4.0]), ddof=0)[1] == pytest.approx(math.sqrt(1.25))
    assert mean_std([0.7]) == (0.7, 0.0)
    assert format_mean_std([0.9, 0.95], scale=100) == "92.50 ± 3.54"
    assert format_mean_std(torch.tensor([1.0, 1.0]), digits=1) == "1.0 ± 0.0"
    with pytest.raises(InvalidInputError, match="NaN"):
        mean_std([1.0, float("nan")])
    with pytest.raises(ConfigError, match="digits"):
        format_mean_std([1.0], digits=-1)


# -------------------------------------------------------------------------- augmentation


def _record(**overrides) -> HistologyAugmentRecord:
    """A neutral record for one 4×4 image, with chosen fields replaced."""
    fields = {
        "height": 4,
        "width": 4,
        "crop_size": None,
        "crop_top": torch.zeros(1, dtype=torch.int64),
        "crop_left": torch.zeros(1, dtype=torch.int64),
        "hflip": torch.tensor([False]),
        "vflip": torch.tensor([False]),
        "rot90": torch.zeros(1, dtype=torch.int64),
        "brightness": torch.ones(1),
        "contrast": torch.ones(1),
        "saturation": torch.ones(1),
        "hue": torch.zeros(1),
        "jitter_order": torch.arange(4).unsqueeze(0),
    }
    fields.update(overrides)
    return HistologyAugmentRecord(**fields)


def _marked(row: int, col: int) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, row, col] = True
    return mask.unsqueeze(1).repeat(1, 3, 1, 1).float(), mask


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"hflip": torch.tensor([True])}, (0, 3)),  # (0, 0) mirrored left-right
        ({"vflip": torch.tensor([True])}, (3, 0)),
        ({"rot90": torch.tensor([1])}, (3, 0)),  # counter-clockwise: top-left -> bottom-left
        ({"rot90": torch.tensor([2])}, (3, 3)),
        ({"rot90": torch.tensor([3])}, (0, 3)),
    ],
)
def test_geometry_by_hand(overrides, where):
    image, mask = _marked(0, 0)
    record = _record(**overrides)
    out_img, out_mask = augment_images(image, record), augment_masks(mask, record)
    assert out_mask[0].nonzero().tolist() == [list(where)]
    assert out_img[0, 0].nonzero().tolist() == [list(where)]
    assert mask[0, 0, 0]  # inputs untouched


def test_rotation_after_flip_and_crop():
    image = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1) / 15
    record = _record(
        crop_size=2,
        crop_top=torch.tensor([1]),
        crop_left=torch.tensor([2]),
        hflip=torch.tensor([True]),
        rot90=torch.tensor([1]),
    )
    expected = torch.rot90(image[..., 1:3, 2:4].flip(-1), 1, dims=(-2, -1))
    torch.testing.assert_close(augment_images(image, record), expected)
    labels = torch.arange(16).view(1, 4, 4)
    torch.testing.assert_close(augment_masks(labels, record), expected[:, 0].mul(15).round().long())


def test_random_batch_keeps_image_and_mask_aligned():
    aug = RandomHistologyAugment(crop_size=6, vflip_p=0.5)
    images = torch.zeros(16, 3, 8, 10)
    masks = torch.zeros(16, 8, 10, dtype=torch.bool)
    rng = np.random.default_rng(5)
    for i in range(16):
        r, c = rng.integers(1, 7), rng.integers(2, 8)
        images[i, :, r, c] = 1.0  # white stays the brightest pixel under any colour jitter
        masks[i, r, c] = True
    record = aug.sample(16, 8, 10, seed=3)
    out, out_masks = augment_images(images, record), augment_masks(masks, record)
    assert out.shape == (16, 3, 6, 6) and out_masks.shape == (16, 6, 6)
    for i in range(16):
        if out_masks[i].any():
            brightest = out[i].sum(0).flatten().argmax().item()
            assert out_masks[i].flatten()[brightest]
        else:  # the mark was cropped away
            assert out[i].sum(0).max() < 3.0


def test_replay_from_record_and_seed():
    aug = RandomHistologyAugment(crop_size=8)
    images = torch.rand(5, 3, 12, 12)
    rec_a, rec_b = aug.sample(5, 12, 12, seed=9), aug.sample(5, 12, 12, seed=9)
    torch.testing.assert_close(augment_images(images, rec_a), augment_images(images, rec_b))
    assert not torch.equal(rec_a.hue, aug.sample(5, 12, 12, seed=10).hue)
    gen = np.random.default_rng(0)
    first, second = aug.sample(5, 12, 12, gen), aug.sample(5, 12, 12, gen)
    assert not torch.equal(first.brightness, second.brightness)


def test_drawn_ranges_follow_the_thesis():
    record = RandomHistologyAugment().sample(400, 8, 8, seed=0)
    for name in ("brightness", "contrast", "saturation"):
        values = getattr(record, name)
        assert values.min() >= 0.5 and values.max() <= 1.5
        assert values.min() < 0.55 and values.max() > 1.45
    assert record.hue.abs().max() <= 0.05 and record.hue.abs().max() > 0.045
    assert set(record.rot90.tolist()) == {0, 1, 2, 3}
    assert 0.4 < record.hflip.float().mean() < 0.6
    assert not record.vflip.any()
    assert all(sorted(row) == [0, 1, 2, 3] for row in record.jitter_order.tolist())
    assert len({tuple(row) for row in record.jitter_order.tolist()}) > 10


def test_colour_operations_by_hand():
    x = torch.tensor([0.2, 0.4, 0.8]).view(1, 3, 1, 1).repeat(2, 1, 2, 2)
    x[1] *= 0.5
    torch.testing.assert_close(
        adjust_brightness(x, torch.tensor([2.0, 0.5])),
        torch.stack([torch.tensor([0.4, 0.8, 1.0]).view(3, 1, 1).expand(3, 2, 2), x[1] * 0.5]),
    )
    gray = 0.2989 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8
    sat0 = adjust_saturation(x[:1], torch.tensor([0.0]))
    torch.testing.assert_close(sat0, torch.full_like(sat0, gray))
    # contrast blends with the mean grey level of the whole image (white is 0.9999 grey)
    y = torch.zeros(1, 3, 1, 2)
    y[..., 1] = 1.0
    mean = 0.9999 / 2
    expected = torch.tensor([0.5 * mean, 0.5 + 0.5 * mean]).expand(1, 3, 1, 2)
    torch.testing.assert_close(adjust_contrast(y, torch.tensor([0.5])), expected)


def test_hue_matches_colorsys():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 4, 5, generator=gen, dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)  # grey: no hue
    shifts = torch.tensor([0.05, -0.3, 0.5], dtype=torch.float64)
    out = adjust_hue(x, shifts)
    for i in range(3):
        for r in range(4):
            for c in range(5):
                h, s, v = colorsys.rgb_to_hsv(*x[i, :, r, c].tolist())
                expected = colorsys.hsv_to_rgb((h + shifts[i].item()) % 1.0, s, v)
                assert out[i, :, r, c].tolist() == pytest.approx(expected, abs=1e-9)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert adjust_hue(red, torch.tensor([1 / 3])).flatten().tolist() == pytest.approx([0, 1, 0])


def test_jitter_runs_in_the_recorded_order():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 4, 4, generator=gen)
    ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    factors = {
        "brightness": torch.tensor([1.4, 0.7]),
        "contrast": torch.tensor([0.6, 1.3]),
        "saturation": torch.tensor([1.5, 0.5]),
        "hue": torch.tensor([0.04, -0.05]),
    }
    orders = torch.tensor([[3, 0, 2, 1], [1, 2, 0, 3]])
    two = {k: torch.zeros(2, dtype=torch.int64) for k in ("crop_top", "crop_left", "rot90")}
    record = _record(
        **factors,
        **two,
        hflip=torch.tensor([False, False]),
        vflip=torch.tensor([False, False]),
        jitter_order=orders,
    )
    out = augment_images(images, record)
    values = list(factors.values())
    for i in range(2):
        expected = images[i : i + 1]
        for op_index in orders[i].tolist():
            expected = ops[op_index](expected, values[op_index][i : i + 1])
        torch.testing.assert_close(out[i : i + 1], expected)
    swapped = _record(
        **factors,
        **two,
        hflip=torch.tensor([False, False]),
        vflip=torch.tensor([False, False]),
        jitter_order=orders.flip(1),
    )
    assert not torch.allclose(augment_images(images, swapped), out)


def test_augment_errors():
    with pytest.raises(InvalidInputError, match="square"):
        RandomHistologyAugment().sample(2, 8, 10, seed=0)
    with pytest.raises(InvalidInputError, match="does not fit"):
        RandomHistologyAugment(crop_size=9).sample(2, 8, 10, seed=0)
    with pytest.raises(ConfigError, match="hue"):
        RandomHistologyAugment(hue=0.6)
    with pytest.raises(ConfigError, match="crop_size"):
        RandomHistologyAugment(crop_size=0)
    record = RandomHistologyAugment(rotate90=False).sample(2, 8, 10, seed=0)
    with pytest.raises(InvalidInputError, match="drawn for"):
        augment_images(torch.rand(3, 3, 8, 10), record)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        augment_images(torch.rand(2, 3, 8, 10) * 255, record)
    with pytest.raises(InvalidInputError, match="RGB"):
        augment_images(torch.rand(2, 1, 8, 10), record)
    with pytest.raises(InvalidInputError, match=r"\(B, H, W\)"):
        augment_masks(torch.zeros(8, 10), record)
    with pytest.raises(InvalidInputError, match="drawn for"):
        augment_masks(torch.zeros(2, 8, 8), record)
