"""Fundus preprocessing and augmentation (wslbench.data.fundus_preprocess), real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wslbench.data import (
    AugmentationParams,
    augment_image,
    augment_mask,
    estimate_fov,
    estimate_fov_radius,
    load_skimage_microaneurysms,
    load_skimage_retina,
    preprocess_fundus,
    render_fundus,
    sample_augmentation,
    sample_fundus_case,
)
from wslbench.errors import DataFormatError, InvalidInputError


def _disc(h: int, w: int, radius: float, cy: float, cx: float, value: float = 0.6) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    img = np.zeros((h, w, 3), np.float32)
    img[inside] = (value, value * 0.6, value * 0.3)
    return img


@pytest.mark.parametrize("radius", [40.0, 97.0, 150.0])
def test_radius_estimate_on_known_disc(radius: float) -> None:
    img = _disc(360, 400, radius, 180, 210)
    fov = estimate_fov(img)
    assert abs(fov.radius - radius) / radius < 0.03
    assert abs(fov.cx - 210) < 2 and abs(fov.cy - 180) < 2
    assert estimate_fov_radius(img) == fov.radius


def test_radius_of_synthetic_fundus() -> None:
    case = render_fundus(sample_fundus_case(2, 256, grade=1))
    r = estimate_fov_radius(case.image)
    assert abs(r - case.record.fov_radius) / case.record.fov_radius < 0.03


def test_preprocess_flat_image_is_neutral_and_fov_eroded() -> None:
    img = _disc(300, 300, 120, 150, 150)
    out = preprocess_fundus(img, target_width=128)
    assert out.image.shape == (128, 128, 3) and out.image.dtype == np.float32
    assert out.fov.shape == (128, 128) and out.fov.dtype == bool
    assert out.scale == pytest.approx(64 / out.source_fov.radius)
    # Flat retina → I_r − I_b ≈ 0 → neutral 0.5 everywhere inside the eroded FOV.
    assert np.abs(out.image[out.fov] - 0.5).max() < 0.03
    # Everything beyond 0.9·radius is exactly the neutral value.
    yy, xx = np.ogrid[:128, :128]
    r = np.hypot(yy - 63.5, xx - 63.5)
    assert np.all(out.image[r > 0.9 * 64 + 0.5] == 0.5)
    assert out.fov[r < 0.9 * 64 - 0.5].all() and not out.fov[r > 0.9 * 64 + 0.5].any()
    wider = preprocess_fundus(img, target_width=128, fov_fraction=0.95)
    assert wider.fov.sum() > out.fov.sum()


def test_preprocess_enhances_local_contrast() -> None:
    img = _disc(256, 256, 110, 128, 128)
    img[120:124, 120:124] *= 0.5  # a dark spot
    out = preprocess_fundus(img, target_width=256)
    spot = out.image[116:130, 116:130].mean(axis=2).min()
    assert spot < 0.5 - 0.4  # 4 × the local difference (≈ 0.19 in mean intensity)
    assert out.image[60:70, 128].mean() == pytest.approx(0.5, abs=0.02)


def test_preprocess_errors() -> None:
    with pytest.raises(DataFormatError, match="field of view"):
        preprocess_fundus(np.zeros((64, 64, 3), np.float32), target_width=64)
    with pytest.raises(InvalidInputError, match="shape"):
        preprocess_fundus(np.zeros((64, 64, 2), np.float32))
    bad = _disc(64, 64, 20, 32, 32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        preprocess_fundus(bad)


def test_real_skimage_images_load_offline_and_preprocess() -> None:
    retina = load_skimage_retina()
    assert retina.shape == (1411, 1411, 3) and retina.dtype == np.float32
    assert 0.0 <= retina.min() and retina.max() <= 1.0 and retina.max() > 0.5
    ma = load_skimage_microaneurysms()
    assert ma.shape == (102, 102) and ma.dtype == np.float32 and 0 < ma.min() < ma.max() <= 1
    rgb = load_skimage_microaneurysms(rgb=True)
    assert rgb.shape == (102, 102, 3)
    np.testing.assert_array_equal(rgb[..., 0], ma)
    np.testing.assert_array_equal(rgb[..., 2], ma)
    out = preprocess_fundus(retina, target_width=256)
    assert out.source_fov.radius == pytest.approx(696, rel=0.03)
    assert out.image.shape == (256, 256, 3)
    inside = out.image[out.fov]
    assert abs(float(np.median(inside)) - 0.5) < 0.05  # background removed
    assert inside.std() > 0.01  # vessels and texture survive


def test_sample_augmentation_ranges_and_replay() -> None:
    draws = [sample_augmentation(s) for s in range(200)]
    assert all(0 <= p.rotation_deg <= 360 for p in draws)
    assert all(-10 <= t <= 10 for p in draws for t in p.translation)
    assert all(0.85 <= p.scale <= 1.15 for p in draws)
    assert all(0.6 <= p.contrast <= 1 / 0.6 + 1e-9 for p in draws)
    flips = sum(p.flip for p in draws)
    assert 60 < flips < 140
    assert np.mean([np.log(p.contrast) for p in draws]) == pytest.approx(0.0, abs=0.08)
    assert sample_augmentation(5) == sample_augmentation(5)
    img = render_fundus(sample_fundus_case(0, 64, grade=2)).image
    p = sample_augmentation(3)
    np.testing.assert_array_equal(augment_image(img, p), augment_image(img, p))
    with pytest.raises(InvalidInputError, match="scale_range"):
        sample_augmentation(0, scale_range=(1.2, 0.8))


def test_flip_and_identity_are_exact() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(32, 40, 3)).astype(np.float32)
    ident = AugmentationParams(0.0, (0.0, 0.0), 1.0, False, 1.0)
    np.testing.assert_allclose(augment_image(img, ident), img, atol=1e-6)
    flip = AugmentationParams(0.0, (0.0, 0.0), 1.0, True, 1.0)
    np.testing.assert_allclose(augment_image(img, flip), img[:, ::-1], atol=1e-6)
    shift = AugmentationParams(0.0, (3.0, -2.0), 1.0, False, 1.0)
    out = augment_image(img, shift)
    np.testing.assert_allclose(out[3:, :-2], img[:-3, 2:], atol=1e-6)
    rot = AugmentationParams(90.0, (0.0, 0.0), 1.0, False, 1.0)
    sq = rng.uniform(size=(31, 31)).astype(np.float32)
    np.testing.assert_allclose(augment_image(sq, rot), np.rot90(sq), atol=1e-5)


def test_contrast_about_neutral() -> None:
    img = np.full((16, 16, 3), 0.6, np.float32)
    p = AugmentationParams(0.0, (0.0, 0.0), 1.0, False, 1.5)
    np.testing.assert_allclose(augment_image(img, p), 0.65, atol=1e-6)


def test_same_transform_on_image_and_mask_torch_and_numpy() -> None:
    case = render_fundus(sample_fundus_case(4, 128, grade=3, noise_std=0.0))
    p = AugmentationParams(37.0, (5.0, -4.0), 1.1, True, 1.0)
    img_t = torch.from_numpy(case.image.transpose(2, 0, 1).copy())
    mask_t = torch.from_numpy(case.mask_stack())
    out_img = augment_image(img_t, p)
    out_mask = augment_mask(mask_t, p)
    assert isinstance(out_img, torch.Tensor) and out_img.shape == (3, 128, 128)
    assert out_mask.dtype == torch.bool and out_mask.shape == (4, 128, 128)
    # numpy HxWxC path gives the same numbers
    np.testing.assert_allclose(augment_image(case.image, p), out_img.numpy().transpose(1, 2, 0),
                               atol=1e-6)
    # hemorrhage pixels stay dark red after the transform; the ring around them does not
    hem = out_mask[1].numpy()
    assert hem.sum() > 0.8 * case.masks["hemorrhage"].sum() * 1.1**2 * 0.8
    green = out_img[1].numpy()
    from scipy import ndimage as ndi

    ring = ndi.binary_dilation(hem, iterations=3) & ~ndi.binary_dilation(hem, iterations=1)
    ring &= augment_mask(case.fov & ~case.vessel_mask, p)
    assert green[hem].mean() < 0.7 * green[ring].mean()
    # resize-and-crop output size (the paper's 448 from 512)
    small = augment_mask(case.masks["hemorrhage"], p, output_size=112)
    assert small.shape == (112, 112) and small.dtype == bool
    with pytest.raises(InvalidInputError, match="shape"):
        augment_mask(np.zeros((2, 3, 4, 5), bool), p)


def test_masks_follow_the_preprocessing_rescale():
    from wslbench.data import make_fundus_case, preprocess_fundus, preprocess_mask, resample_like

    case = make_fundus_case(3, 128, grade=3)
    pre = preprocess_fundus(case.image, target_width=128)
    assert abs(pre.scale - 1.0) > 0.02, "the case must actually be rescaled for this test"
    moved = preprocess_mask(case.mask_stack(), pre)
    assert moved.shape == (4, 128, 128)
    photo = resample_like(case.image.transpose(2, 0, 1), pre).mean(0)
    lesion = moved[1]  # hemorrhages: darker than the retina around them on the new grid
    ring = ndi_dilate(lesion, 3) & ~ndi_dilate(lesion, 1) & pre.fov
    assert photo[lesion].mean() < photo[ring].mean() - 0.05
    stale = case.masks["hemorrhage"]  # the unscaled mask no longer lines up as well
    assert (moved[1] != stale).sum() > 0


def ndi_dilate(mask, n):
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=n)


@pytest.mark.parametrize("output_size", [None, 48, 96])
def test_augment_batch_equals_augment_image(output_size: int | None) -> None:
    """One grid_sample over the batch = the per-image spline warp (bilinear, SciPy's
    "constant" border), contrast about neutral and clipping included."""
    from wslbench.data.fundus_preprocess import augment_batch

    rng = np.random.default_rng(3)
    x = torch.rand(6, 3, 64, 64)
    params = [sample_augmentation(rng) for _ in range(6)]
    batch = augment_batch(x, params, output_size=output_size, neutral=0.5)
    loop = torch.stack([augment_image(x[i], params[i], output_size=output_size, neutral=0.5)
                        for i in range(6)])
    assert batch.shape == loop.shape
    assert float((batch - loop).abs().max()) < 1e-4
    with pytest.raises(InvalidInputError, match="one AugmentationParams per image"):
        augment_batch(x, params[:2])
    with pytest.raises(InvalidInputError, match="B, C, H, W"):
        augment_batch(x[0], params[:1])
