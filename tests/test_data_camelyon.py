"""CAMELYON16 patch protocol (Rony 2020, section 2.1.2.3) on synthetic slides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from wslbench.data import (
    ArraySlide,
    TiffSlide,
    calibrate_category2,
    extract_patch,
    normal_patch_quota,
    open_slide,
    sample_metastatic_patches,
    sample_normal_patches,
    tissue_mask,
)
from wslbench.errors import InvalidInputError

P = 64  # patch side; the slide is an 8 × 8 grid of patches
LEVEL = 3  # tissue mask at downsampling 8


def _slide(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """512² slide: white glass, pink tissue in rows/cols 64:448, tumour with known p_m."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(0.94, 0.015, (512, 512, 3)), 0, 1)
    tissue = np.clip(rng.normal((0.85, 0.55, 0.72), 0.04, (384, 384, 3)), 0, 1)
    img[64:448, 64:448] = tissue
    mask = np.zeros((512, 512), np.uint8)
    mask[128:320, 128:320] = 1  # 3 × 3 patches with p_m = 1 (category 2)
    mask[64:128, 320:340] = 1  # patch (1, 5): p_m = 20/64 (category 1)
    mask[320:384, 64:70] = 1  # patch (5, 1): p_m = 6/64 < p0 (discarded)
    mask[320:384, 320:360] = 1  # patch (5, 5): p_m = 40/64 (category 2)
    mask[384:448, 384:413] = 1  # patch (6, 6): p_m = 29/64 (category 1)
    mask[0:64, 0:64] = 1  # tumour on glass: no tissue (discarded)
    return (img * 255).round().astype(np.uint8), mask


def test_tissue_mask_separates_tissue_from_blank_glass() -> None:
    img, _ = _slide()
    thumb = ArraySlide(img).thumbnail(8)
    assert thumb.shape == (64, 64, 3)
    tm = tissue_mask(thumb)
    truth = np.zeros((64, 64), bool)
    truth[8:56, 8:56] = True
    assert (tm & truth).sum() / (tm | truth).sum() > 0.97
    black = thumb.copy()
    black[:4, :4] = 0  # scanner padding is not tissue
    assert not tissue_mask(black)[:4, :4].any()


def test_metastatic_categories_and_histogram() -> None:
    img, mask = _slide()
    out = sample_metastatic_patches(img, mask, patch_size=P, tissue_level=LEVEL, p_n=5.0)
    assert (out.n_category1, out.n_category2) == (2, 10)
    got = {(p.y // P, p.x // P): (p.category, p.metastatic_fraction) for p in out.patches}
    assert got[(1, 5)] == (1, 20 / 64) and got[(6, 6)] == (1, 29 / 64)
    assert got[(5, 5)] == (2, 40 / 64)
    assert (5, 1) not in got and (0, 0) not in got  # p_m < p0, and no tissue
    assert all(got[(r, c)] == (2, 1.0) for r in (2, 3, 4) for c in (2, 3, 4))
    assert len(out.patches) == 12 and all(p.label == 1 for p in out.patches)
    hist = np.array(out.histogram)
    assert len(hist) == 20 and np.allclose(np.diff(out.bin_edges), 0.05)
    assert hist[19] == 9 and hist[12] == 1 and hist[6] == 1 and hist[9] == 1 and hist.sum() == 12
    assert all(p.tissue_fraction >= 0.1 for p in out.patches)


def test_calibration_counts_and_reproducibility() -> None:
    img, mask = _slide()
    default = sample_metastatic_patches(img, mask, patch_size=P, tissue_level=LEVEL, seed=3)
    # p_n = 1 %: all category-1 patches and ceil(2 * 0.01) = 1 category-2 patch.
    assert [p.category for p in default.patches].count(1) == 2
    assert [p.category for p in default.patches].count(2) == 1
    again = sample_metastatic_patches(img, mask, patch_size=P, tissue_level=LEVEL, seed=3)
    assert again == default
    half = sample_metastatic_patches(img, mask, patch_size=P, tissue_level=LEVEL, p_n=1.0)
    assert [p.category for p in half.patches].count(2) == 2
    # Overlap is impossible: all patches lie on the grid.
    assert all(p.y % P == 0 and p.x % P == 0 for p in half.patches)


def test_calibration_picks_bins_uniformly_not_patches() -> None:
    fractions = [1.0] * 9 + [0.625]
    hits = 0
    for seed in range(400):
        chosen = calibrate_category2(fractions, 2, seed, p_n=1.0)
        assert len(chosen) == 2 and len(set(chosen)) == 2
        hits += 9 in chosen
    # Uniform bin then patch: P(0.625 drawn) = 1/2 + 1/2 · 1/2 = 0.75 (patch-uniform: 0.2).
    assert 0.68 < hits / 400 < 0.82
    assert calibrate_category2(fractions, 0, 0) == []
    assert sorted(calibrate_category2(fractions, 100, 0, p_n=1.0)) == list(range(10))


def test_normal_patches_uniform_without_overlap() -> None:
    img, _ = _slide()
    a = sample_normal_patches(img, 5, patch_size=P, tissue_level=LEVEL, seed=1)
    assert len(a) == 5 and len({(p.y, p.x) for p in a}) == 5
    assert all(64 <= p.y and p.y + P <= 448 and 64 <= p.x and p.x + P <= 448 for p in a)
    assert all(p.category == 0 and p.label == 0 and p.metastatic_fraction == 0 for p in a)
    assert sample_normal_patches(img, 5, patch_size=P, tissue_level=LEVEL, seed=1) == a
    assert sample_normal_patches(img, 5, patch_size=P, tissue_level=LEVEL, seed=2) != a
    every = sample_normal_patches(img, 100, patch_size=P, tissue_level=LEVEL)
    assert len(every) == 36  # only the 6 × 6 tissue patches exist
    assert normal_patch_quota(10, 3) == [4, 3, 3] and sum(normal_patch_quota(7, 7)) == 7


def test_extract_patch_pixels_and_mask() -> None:
    img, mask = _slide()
    out = sample_metastatic_patches(img, mask, patch_size=P, tissue_level=LEVEL, p_n=5.0)
    p = next(q for q in out.patches if (q.y, q.x) == (64, 320))
    image, m = extract_patch(img, p, mask)
    assert image.shape == (P, P, 3) and image.dtype == np.float32
    assert np.allclose(image, img[64:128, 320:384] / 255.0)
    assert m.dtype == bool and m.mean() == p.metastatic_fraction
    assert not extract_patch(img, p)[1].any()


def test_tiled_tiff_matches_in_memory(tmp_path: Path) -> None:
    img, mask = _slide()
    tifffile.imwrite(tmp_path / "slide.tif", img, tile=(32, 32))
    tifffile.imwrite(tmp_path / "mask.tif", mask, tile=(32, 32))
    tifffile.imwrite(tmp_path / "flat.tif", img)  # contiguous: memory-mapped
    tiled = open_slide(tmp_path / "slide.tif")
    flat = open_slide(str(tmp_path / "flat.tif"))
    assert isinstance(tiled, TiffSlide) and tiled.shape == (512, 512) and tiled.channels == 3
    assert np.array_equal(tiled.read_region(37, 250, 70, 91), img[37:107, 250:341])
    assert np.array_equal(tiled.read_region(500, 500, 40, 40), img[500:, 500:])
    assert np.array_equal(flat.read_region(37, 250, 70, 91), img[37:107, 250:341])
    assert np.allclose(tiled.thumbnail(8), ArraySlide(img).thumbnail(8))
    kwargs = {"patch_size": P, "tissue_level": LEVEL, "p_n": 1.0, "seed": 5}
    ref = sample_metastatic_patches(img, mask, **kwargs)
    assert sample_metastatic_patches(tmp_path / "slide.tif", tmp_path / "mask.tif",
                                     **kwargs) == ref
    assert sample_metastatic_patches(flat, mask, **kwargs) == ref
    image, m = extract_patch(tiled, ref.patches[0], tmp_path / "mask.tif")
    q = ref.patches[0]
    assert np.array_equal(m, mask[q.y:q.y + P, q.x:q.x + P] > 0)
    assert np.allclose(image, img[q.y:q.y + P, q.x:q.x + P] / 255.0)


def test_invalid_inputs() -> None:
    img, mask = _slide()
    with pytest.raises(InvalidInputError, match="differs"):
        sample_metastatic_patches(img, mask[:256], patch_size=P)
    with pytest.raises(InvalidInputError, match="p0 must not exceed p1"):
        sample_metastatic_patches(img, mask, patch_size=P, p0=0.6, p1=0.5)
    with pytest.raises(InvalidInputError, match="patch_size"):
        sample_metastatic_patches(img, mask, patch_size=1024)
    with pytest.raises(InvalidInputError, match="slide must be"):
        open_slide([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="non-negative"):
        sample_normal_patches(img, -1)
