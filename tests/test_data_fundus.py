"""Synthetic fundus generator (wslbench.data.synthetic_fundus)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from wslbench.data import (
    LESION_TYPES,
    Blob,
    NeovascularTuft,
    etdrs_grade,
    make_fundus_dataset,
    render_fundus,
    sample_fundus_case,
)
from wslbench.errors import InvalidInputError


def _ring(mask: np.ndarray, fov: np.ndarray, width: int = 3) -> np.ndarray:
    from scipy import ndimage as ndi

    grown = ndi.binary_dilation(mask, iterations=width)
    return grown & ~ndi.binary_dilation(mask, iterations=1) & fov


def test_same_seed_same_image_and_record_replay() -> None:
    a = sample_fundus_case(7, 128, grade=3)
    b = sample_fundus_case(7, 128, grade=3)
    assert a == b
    ca, cb = render_fundus(a), render_fundus(b)
    np.testing.assert_array_equal(ca.image, cb.image)
    for k in LESION_TYPES:
        np.testing.assert_array_equal(ca.masks[k], cb.masks[k])
    other = render_fundus(sample_fundus_case(8, 128, grade=3))
    assert not np.array_equal(ca.image, other.image)


@pytest.mark.parametrize("size", [64, 128, 512])
def test_shapes_and_ranges(size: int) -> None:
    case = render_fundus(sample_fundus_case(1, size, grade=2))
    assert case.image.shape == (size, size, 3) and case.image.dtype == np.float32
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert set(case.masks) == set(LESION_TYPES)
    for m in case.masks.values():
        assert m.shape == (size, size) and m.dtype == bool
    assert case.mask_stack().shape == (4, size, size)
    # Circular FOV on a dark background, brighter inside.
    assert case.fov[size // 2, size // 2] and not case.fov[0, 0]
    assert case.image[~case.fov].mean() < 0.05 < case.image[case.fov].mean()
    # Lesion masks lie inside the FOV.
    assert not np.any(case.mask_stack() & ~case.fov)


def test_microaneurysms_stay_visible_at_64px() -> None:
    case = render_fundus(sample_fundus_case(3, 64, grade=1))
    mas = [b for b in case.lesions if b.kind == "microaneurysm"]
    assert mas and all(b.radius >= 1.0 for b in mas)
    assert case.masks["microaneurysm"].sum() >= len(mas)


def test_lesion_sizes_scale_with_image() -> None:
    def mean_radius(size: int, kind: str) -> float:
        r = [b.radius for s in range(5) for b in sample_fundus_case(s, size, grade=3).lesions
             if b.kind == kind]
        return float(np.mean(r))

    assert mean_radius(512, "hemorrhage") > 3 * mean_radius(128, "hemorrhage")


def test_masks_align_with_drawn_lesions() -> None:
    # Red lesions: redder (R/G up) and darker than the surrounding retina; exudates:
    # brighter and yellower (G up, R/B up).
    for seed in range(4):
        case = render_fundus(sample_fundus_case(seed, 256, grade=3, confounders=False,
                                                noise_std=0.0))
        img = case.image
        lum = img.mean(axis=2)
        for kind in ("microaneurysm", "hemorrhage"):
            m = case.masks[kind] & ~case.vessel_mask
            ring = _ring(case.masks[kind], case.fov) & ~case.vessel_mask
            assert m.sum() > 0
            assert lum[m].mean() < 0.8 * lum[ring].mean()
            assert img[m, 1].mean() < 0.7 * img[ring, 1].mean()  # green absorbed: deep red
        if case.masks["hard_exudate"].any():
            m = case.masks["hard_exudate"]
            ring = _ring(m, case.fov) & ~case.vessel_mask
            assert lum[m].mean() > 1.2 * lum[ring].mean()
            assert img[m, 1].mean() > 1.5 * img[ring, 1].mean()  # yellow: green up
            assert img[m, 2].mean() < img[m, 1].mean()  # ... more than blue


def test_referable_images_differ_visibly_where_their_lesions_are() -> None:
    """Referable cases carry visible hemorrhages, exudates or cotton-wool spots: the colour
    inside their masks differs from the retina around them. (Whole-image colour statistics
    must *not* tell the grade: tests/test_dr_shortcut_probe.py.)"""
    ds = make_fundus_dataset(20, 64, seed=3)
    masks_px = ds.masks[:, 1:].flatten(1).sum(1)
    assert torch.all(masks_px[~ds.referable] == 0)
    assert torch.all(masks_px[ds.referable] > 0)
    for i in np.flatnonzero(ds.referable.numpy()):
        img = ds.images[i].permute(1, 2, 0).numpy()
        lesion = ds.masks[i, 1:].any(0).numpy()
        ring = _ring(lesion, ds.fov[i].numpy())
        contrast = np.abs(img[lesion].mean(0) - img[ring].mean(0)).sum()
        assert contrast > 0.1, (i, contrast)


def _record_with(lesions: list[Blob], tufts: tuple[NeovascularTuft, ...] = ()) -> object:
    base = sample_fundus_case(0, 128, grade=0)
    return dataclasses.replace(base, lesions=tuple(lesions), tufts=tufts)


def _blob(kind: str, cy: float, cx: float) -> Blob:
    return Blob(kind, cy, cx, 2.0, 2.0, 0.0, (0.4, 0.05, 0.05), 0.9, 0.3)


def test_grade_rule_hand_built() -> None:
    base = sample_fundus_case(0, 128, grade=0)
    c = (base.fov_cy, base.fov_cx)
    assert etdrs_grade(_record_with([])) == 0
    assert etdrs_grade(_record_with([_blob("microaneurysm", c[0] - 20, c[1] - 20)])) == 1
    for kind in ("hemorrhage", "hard_exudate", "cotton_wool"):
        assert etdrs_grade(_record_with([_blob(kind, c[0] + 20, c[1] + 20)])) == 2
    offsets = {0: (-20, -20), 1: (-20, 20), 2: (20, -20), 3: (20, 20)}

    def hems(per_quadrant: dict[int, int]) -> list[Blob]:
        return [_blob("hemorrhage", c[0] + offsets[q][0] + i, c[1] + offsets[q][1])
                for q, n in per_quadrant.items() for i in range(n)]

    assert etdrs_grade(_record_with(hems({0: 3, 1: 3, 2: 3}))) == 3
    assert etdrs_grade(_record_with(hems({0: 3, 1: 3, 2: 2, 3: 2}))) == 2  # two quadrants only
    assert etdrs_grade(_record_with(hems({0: 9}))) == 2  # many, but one quadrant
    tuft = (NeovascularTuft(c[0], c[1], 5.0),)
    assert etdrs_grade(_record_with([], tufts=tuft)) == 4


@pytest.mark.parametrize("grade", [0, 1, 2, 3, 4])
def test_sampled_grade_matches_rule_and_referable(grade: int) -> None:
    for seed in range(6):
        rec = sample_fundus_case(seed, 96, grade=grade)
        case = render_fundus(rec)
        assert etdrs_grade(rec) == grade == case.grade == rec.grade
        assert case.referable == (grade >= 2) == rec.referable
        kinds = {b.kind for b in rec.lesions}
        if grade == 0:
            assert not kinds
        if grade == 1:
            assert kinds == {"microaneurysm"}
        if grade == 4:
            assert rec.tufts and case.neovascular_mask.any()


def test_confounders_present_and_some_next_to_lesions() -> None:
    near, total = 0, 0
    for seed in range(10):
        rec = sample_fundus_case(seed, 128, grade=3, adjacent_confounder_fraction=1.0)
        for cf in rec.confounders:
            total += 1
            d = min(np.hypot(cf.cy - b.cy, cf.cx - b.cx) - b.radius for b in rec.lesions)
            near += d < 8.0
    assert total > 0 and near == total
    case = render_fundus(sample_fundus_case(5, 128, grade=0))
    assert case.vessel_mask.sum() > 0.03 * case.fov.sum()
    none = sample_fundus_case(5, 128, grade=2, confounders=False)
    assert none.confounders == ()


def test_dataset_batch_shapes_determinism_and_prefix() -> None:
    ds = make_fundus_dataset(6, 64, seed=11)
    assert ds.images.shape == (6, 3, 64, 64) and ds.images.dtype == torch.float32
    assert ds.masks.shape == (6, 4, 64, 64) and ds.masks.dtype == torch.bool
    assert ds.grades.dtype == torch.int64 and len(ds) == 6
    assert torch.equal(ds.referable, ds.grades >= 2)
    again = make_fundus_dataset(6, 64, seed=11)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.masks, again.masks)
    prefix = make_fundus_dataset(3, 64, seed=11)
    assert torch.equal(prefix.images, ds.images[:3])
    replay = render_fundus(ds.records[2])
    np.testing.assert_array_equal(replay.image.transpose(2, 0, 1), ds.images[2].numpy())
    only_zero = make_fundus_dataset(4, 64, seed=1, grade_distribution=[1, 0, 0, 0, 0])
    assert torch.all(only_zero.grades == 0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(InvalidInputError, match="size"):
        sample_fundus_case(0, 32)
    with pytest.raises(InvalidInputError, match="grade"):
        sample_fundus_case(0, 64, grade=5)
    with pytest.raises(InvalidInputError, match="grade_distribution"):
        make_fundus_dataset(2, 64, seed=0, grade_distribution=[1, 0, 0])
    with pytest.raises(InvalidInputError, match="FundusRecord"):
        render_fundus("not a record")  # type: ignore[arg-type]
