"""Fundus preprocessing and data augmentation of Quellec et al. (2017), section 5.1.1.

Preprocessing follows B. Graham's min-pooling solution as the paper adapts it and as it
was published (DESIGN §8):

1. the field-of-view (FOV) radius r is estimated from the middle row of the image
   (pixels whose channel sum exceeds a tenth of the row mean), and the image is
   resampled so that the FOV width 2r becomes ``target_width`` (512 in the paper),
   centred in a ``target_width`` × ``target_width`` square;
2. the background ``I_b`` is a Gaussian blur of each colour channel with
   σ = radius/30 (8.5 px at width 512, as in the paper);
3. ``I_n = 4 (I_r − I_b)``, plus an offset of 0.5 in [0, 1] units (Graham's +128 of
   255) so that flat background maps to mid-grey, clipped to [0, 1] as the 8-bit
   original saturates;
4. the FOV is eroded: pixels farther than 0.9·radius from the centre are set to the
   neutral value 0.5. The paper's "eroded by 5 %" is read as 5 % of the FOV width on
   each side, i.e. 10 % of the radius, which is exactly Graham's published 0.9·radius
   (``fov_fraction`` changes it, e.g. 0.95 for 5 % of the radius).

Augmentation (section 5.1.1): random rotation in [0°, 360°], translation in
[−10, 10] px, scale in [85 %, 115 %], horizontal flip and a multiplicative contrast
factor in [60 %, 167 %]. :func:`sample_augmentation` draws and records the parameters
(:class:`AugmentationParams`); :func:`augment_image` and :func:`augment_mask` apply
them deterministically, the same geometric transform to an image and its masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi

from wslbench.errors import DataFormatError, InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "GRAHAM_OFFSET",
    "augment_batch",
    "FieldOfView",
    "PreprocessedFundus",
    "AugmentationParams",
    "as_rgb_float",
    "estimate_fov",
    "estimate_fov_radius",
    "preprocess_fundus",
    "preprocess_mask",
    "resample_like",
    "sample_augmentation",
    "augment_image",
    "augment_mask",
]


GRAHAM_OFFSET: float = 0.5
"""Graham's +128 of 255: the display offset :func:`preprocess_fundus` adds to the
zero-centred ``I_n = 4 (I_r − I_b)`` (5.1.1). Heatmaps and losses that scale the input
(π, eq. 3; L0, eq. 6) subtract it first, so they act on ``I_n`` itself."""


@dataclass(frozen=True)
class FieldOfView:
    """Estimated camera field of view: centre ``(cy, cx)`` and radius, in pixels."""

    cy: float
    cx: float
    radius: float


@dataclass(frozen=True)
class PreprocessedFundus:
    """Result of :func:`preprocess_fundus`.

    Attributes:
        image: ``(T, T, 3)`` float32 in [0, 1], neutral value ``offset`` (0.5).
        fov: ``(T, T)`` bool eroded field-of-view mask.
        source_fov: the field of view estimated in the input image.
        scale: resampling factor applied to the input (output px per input px).
    """

    image: np.ndarray
    fov: np.ndarray
    source_fov: FieldOfView
    scale: float


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """Validate an image and return it as ``(H, W, 3)`` float32 in [0, 1].

    Accepts ``(H, W)`` grey (replicated to 3 channels), ``(H, W, 3)`` or ``(H, W, 4)``
    (alpha dropped); integer dtypes are divided by their maximum (255 for uint8),
    floats must already be in [0, 1].
    """
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"expected a NumPy array (H, W, 3), got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = image[..., None].repeat(3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 8:
        raise InvalidInputError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4) with H, W ≥ 8, "
            f"got {image.shape}"
        )
    image = image[..., :3]
    if np.issubdtype(image.dtype, np.bool_):
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    out = image.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError("image contains NaN or infinite values; expected finite values")
    if out.min() < -1e-3 or out.max() > 1 + 1e-3:
        raise InvalidInputError(
            f"float image values must be in [0, 1], got [{out.min():.3g}, {out.max():.3g}]"
        )
    return np.clip(out, 0.0, 1.0)


def _extent(profile: np.ndarray) -> tuple[int, int, int]:
    on = np.flatnonzero(profile > profile.mean() / 10.0)
    if on.size == 0:
        return 0, 0, 0
    return int(on.size), int(on[0]), int(on[-1])


def estimate_fov(image: np.ndarray) -> FieldOfView:
    """Estimate the field of view (Graham's rule, paper section 5.1.1).

    The radius is half the number of middle-row pixels whose channel sum exceeds a
    tenth of the row mean; the centre column is the middle of that run. The centre
    row is the middle of the same run along the middle column, unless the FOV is
    cropped at the top or bottom (vertical run shorter than 95 % of the horizontal
    one), where the image's middle row is used.

    Args:
        image: ``(H, W, 3)`` (or grey ``(H, W)``) fundus photograph.

    Returns:
        The :class:`FieldOfView` in input pixels.
    """
    img = as_rgb_float(image)
    h, w = img.shape[:2]
    n, first, last = _extent(img[h // 2].sum(axis=1))
    if n < 4:
        raise DataFormatError(
            "no field of view found on the middle row (it is dark everywhere); expected a "
            "fundus photograph with a bright circular field of view"
        )
    radius = n / 2.0
    cx = (first + last) / 2.0
    nv, top, bottom = _extent(img[:, int(round(cx))].sum(axis=1))
    cy = (top + bottom) / 2.0 if nv >= 0.95 * n else (h - 1) / 2.0
    return FieldOfView(cy=float(cy), cx=float(cx), radius=float(radius))


def estimate_fov_radius(image: np.ndarray) -> float:
    """Field-of-view radius in pixels (:func:`estimate_fov`)."""
    return estimate_fov(image).radius


def preprocess_fundus(
    image: np.ndarray,
    target_width: int = 512,
    *,
    sigma_fraction: float = 1.0 / 30.0,
    gain: float = 4.0,
    offset: float = GRAHAM_OFFSET,
    fov_fraction: float = 0.9,
    clip: bool = True,
) -> PreprocessedFundus:
    """Graham / Quellec preprocessing (section 5.1.1): rescale, subtract background, erode.

    Args:
        image: ``(H, W, 3)`` uint8 or float [0, 1] fundus photograph (or grey ``(H, W)``).
        target_width: FOV width (and output side) after rescaling; 512 in the paper.
        sigma_fraction: background Gaussian σ as a fraction of the target radius
            (1/30: σ = 8.5 px at width 512).
        gain: the factor 4 of ``I_n = 4 (I_r − I_b)``.
        offset: value added so that the background is neutral (0.5 = Graham's 128/255).
            It is a display convention: the paper's network input is the zero-centred
            ``I_n``, so multiplicative heatmaps (π) must act on ``image − offset``
            (``reference=offset`` of :class:`~wslbench.attribution.HueConstrainedSensitivity`).
        fov_fraction: kept FOV radius as a fraction of the radius (0.9, see module doc).
        clip: clip the result to [0, 1].

    Returns:
        :class:`PreprocessedFundus` with the ``(T, T, 3)`` float32 image and the eroded FOV.
    """
    if isinstance(target_width, bool) or not isinstance(target_width, int) or target_width < 16:
        raise InvalidInputError(f"target_width must be an int ≥ 16, got {target_width!r}")
    if not 0 < fov_fraction <= 1:
        raise InvalidInputError(f"fov_fraction must be in (0, 1], got {fov_fraction}")
    if sigma_fraction <= 0:
        raise InvalidInputError(f"sigma_fraction must be > 0, got {sigma_fraction}")
    img = as_rgb_float(image)
    fov = estimate_fov(img)
    t = target_width
    scale = (t / 2.0) / fov.radius
    if scale < 1.0:  # anti-aliasing before downsampling (scikit-image's rule)
        img = ndi.gaussian_filter(img, sigma=((1 / scale - 1) / 2,) * 2 + (0,))
    c_out = (t - 1) / 2.0
    offset_in = np.array([fov.cy - c_out / scale, fov.cx - c_out / scale])
    resized = np.empty((t, t, 3), np.float32)
    for c in range(3):
        resized[..., c] = ndi.affine_transform(
            img[..., c], np.full(2, 1.0 / scale), offset=offset_in, output_shape=(t, t),
            order=1, mode="constant", cval=0.0,
        )
    sigma = sigma_fraction * t / 2.0
    background = ndi.gaussian_filter(resized, sigma=(sigma, sigma, 0), mode="reflect")
    out = gain * (resized - background) + offset
    yy, xx = np.ogrid[:t, :t]
    mask = (yy - c_out) ** 2 + (xx - c_out) ** 2 <= (fov_fraction * t / 2.0) ** 2
    out[~mask] = offset
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return PreprocessedFundus(image=out.astype(np.float32), fov=mask, source_fov=fov,
                              scale=float(scale))


def resample_like(planes: np.ndarray, pre: PreprocessedFundus, *, order: int = 1) -> np.ndarray:
    """Resample ``(K, H, W)`` planes of the input image onto ``pre``'s grid.

    The rescaling and centring of :func:`preprocess_fundus` without its background
    subtraction: for displaying the photograph under heatmaps of the preprocessed image
    (``order=1``) or carrying masks along (``order=0``). Outside the input is 0.
    """
    arr = np.asarray(planes, dtype=np.float32)
    if arr.ndim != 3:
        raise InvalidInputError(f"planes must be (K, H, W), got shape {arr.shape}")
    t = pre.image.shape[0]
    c_out = (t - 1) / 2.0
    fov, scale = pre.source_fov, pre.scale
    offset_in = np.array([fov.cy - c_out / scale, fov.cx - c_out / scale])
    return np.stack([
        ndi.affine_transform(p, np.full(2, 1.0 / scale), offset=offset_in, output_shape=(t, t),
                             order=order, mode="constant", cval=0.0)
        for p in arr
    ])


def preprocess_mask(mask: np.ndarray, pre: PreprocessedFundus) -> np.ndarray:
    """A ``(H, W)`` or ``(K, H, W)`` bool mask of the input image on ``pre``'s grid.

    Nearest-neighbour :func:`resample_like`, so lesion masks stay aligned with the
    preprocessed image.
    """
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"mask must be (H, W) or (K, H, W), got shape {arr.shape}")
    out = resample_like(arr.reshape(-1, *arr.shape[-2:]), pre, order=0) > 0.5
    return out.reshape(*arr.shape[:-2], *out.shape[-2:])


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class AugmentationParams:
    """One draw of the section 5.1.1 augmentation.

    Attributes:
        rotation_deg: rotation angle, counter-clockwise as displayed, about the centre.
        translation: ``(rows, cols)`` shift in output pixels.
        scale: zoom factor (> 1 enlarges).
        flip: mirror left-right (applied before the rotation).
        contrast: multiplicative contrast factor about the neutral value.
    """

    rotation_deg: float
    translation: tuple[float, float]
    scale: float
    flip: bool
    contrast: float


def _check_range(name: str, rng_: tuple[float, float], positive: bool = False) -> None:
    lo, hi = rng_
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        raise InvalidInputError(
            f"{name} must be a (low, high) pair with low ≤ high"
            + (" and low > 0" if positive else "") + f", got {rng_!r}"
        )


def sample_augmentation(
    rng: np.random.Generator | int | None,
    *,
    rotation_range: tuple[float, float] = (0.0, 360.0),
    translation_range: tuple[float, float] = (-10.0, 10.0),
    scale_range: tuple[float, float] = (0.85, 1.15),
    flip_probability: float = 0.5,
    contrast_range: tuple[float, float] = (0.6, 1.0 / 0.6),
) -> AugmentationParams:
    """Draw augmentation parameters (section 5.1.1 ranges by default).

    Rotation, translation (per axis) and scale are uniform in their ranges; the
    contrast factor is log-uniform in ``contrast_range`` so that 60 % and 167 % (= 1/0.6)
    are equally likely, as the symmetric range suggests.

    Args:
        rng: NumPy generator or seed.
        rotation_range: degrees.
        translation_range: pixels, drawn independently for rows and columns.
        scale_range: zoom factors.
        flip_probability: probability of a horizontal flip.
        contrast_range: multiplicative contrast factors (> 0).

    Returns:
        The recorded :class:`AugmentationParams`.
    """
    _check_range("rotation_range", rotation_range)
    _check_range("translation_range", translation_range)
    _check_range("scale_range", scale_range, positive=True)
    _check_range("contrast_range", contrast_range, positive=True)
    if not 0.0 <= flip_probability <= 1.0:
        raise InvalidInputError(f"flip_probability must be in [0, 1], got {flip_probability}")
    rng = numpy_rng(rng)
    return AugmentationParams(
        rotation_deg=float(rng.uniform(*rotation_range)),
        translation=(float(rng.uniform(*translation_range)), float(rng.uniform(*translation_range))),
        scale=float(rng.uniform(*scale_range)),
        flip=bool(rng.uniform() < flip_probability),
        contrast=float(math.exp(rng.uniform(math.log(contrast_range[0]),
                                            math.log(contrast_range[1])))),
    )


def _to_chw(x: np.ndarray | torch.Tensor, what: str) -> tuple[np.ndarray, bool, bool]:
    """(C, H, W) float64 view of an image/mask; returns (array, is_torch, had_channels)."""
    arr, is_torch, had_channels = _chw_view(x, what)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} holds NaN or infinite values; expected finite values")
    return arr, is_torch, had_channels


def _chw_view(x: np.ndarray | torch.Tensor, what: str) -> tuple[np.ndarray, bool, bool]:
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
        if arr.ndim == 2:
            return arr[None].astype(np.float64), True, False
        if arr.ndim == 3:
            return arr.astype(np.float64), True, True
    elif isinstance(x, np.ndarray):
        if x.ndim == 2:
            return x[None].astype(np.float64), False, False
        if x.ndim == 3:
            return np.moveaxis(x, 2, 0).astype(np.float64), False, True
    else:
        raise InvalidInputError(f"{what} must be a NumPy array or a torch tensor, got {type(x).__name__}")
    raise InvalidInputError(
        f"{what} must be (H, W) or (H, W, C) as a NumPy array, (H, W) or (C, H, W) as a "
        f"torch tensor; got shape {tuple(x.shape)}"
    )


def _from_chw(arr: np.ndarray, like: np.ndarray | torch.Tensor, is_torch: bool,
              had_channels: bool) -> np.ndarray | torch.Tensor:
    out = arr if had_channels else arr[0]
    if is_torch and isinstance(like, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(out)).to(dtype=like.dtype, device=like.device)
    if had_channels:
        out = np.moveaxis(out, 0, 2)
    return np.ascontiguousarray(out).astype(like.dtype)


def _inverse_affine(params: AugmentationParams, h: int, w: int, output_size: int | None
                    ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Output (row, col) → input (row, col) map of the geometric part: ``inverse · o + offset``.

    The transform maps the input centre to the output centre (flip, rotation, scale,
    translation, then the resize to ``output_size``). Returns ``inverse``, ``offset`` and the
    output shape.
    """
    oh, ow = (output_size, output_size) if output_size is not None else (h, w)
    zoom = params.scale * (min(oh, ow) / min(h, w))
    theta = math.radians(params.rotation_deg)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])  # (row, col): counter-clockwise as displayed
    flip = np.diag([1.0, -1.0 if params.flip else 1.0])
    forward = zoom * rot @ flip  # output − c_out − t = forward · (input − c_in)
    inverse = np.linalg.inv(forward)
    c_in = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    c_out = np.array([(oh - 1) / 2.0, (ow - 1) / 2.0])
    offset = c_in - inverse @ (c_out + np.asarray(params.translation))
    # Snap round-off (cos 90° ≈ 6e-17) so exact quarter turns and flips stay exact.
    return np.round(inverse, 12), np.round(offset, 9), oh, ow


def _warp(chw: np.ndarray, params: AugmentationParams, output_size: int | None, order: int,
          cval: float) -> np.ndarray:
    """Apply the geometric part (flip, rotation, scale, translation, resize) per channel."""
    _, h, w = chw.shape
    inverse, offset, oh, ow = _inverse_affine(params, h, w, output_size)
    return np.stack([
        ndi.affine_transform(ch, inverse, offset=offset, output_shape=(oh, ow), order=order,
                             mode="constant", cval=cval)
        for ch in chw
    ])


def _check_params(params: AugmentationParams) -> None:
    if not isinstance(params, AugmentationParams):
        raise InvalidInputError(f"params must be AugmentationParams, got {type(params).__name__}")
    if params.scale <= 0 or params.contrast <= 0:
        raise InvalidInputError(
            f"scale and contrast must be > 0, got scale={params.scale}, contrast={params.contrast}"
        )


def augment_image(
    image: np.ndarray | torch.Tensor,
    params: AugmentationParams,
    *,
    output_size: int | None = None,
    neutral: float = 0.5,
    order: int = 1,
    clip: bool = True,
) -> np.ndarray | torch.Tensor:
    """Apply recorded augmentation parameters to an image (deterministic).

    The geometric transform maps the input centre to the output centre; pixels coming
    from outside the input are set to ``neutral``. The contrast factor acts about
    ``neutral`` (the mid-grey of :func:`preprocess_fundus`): ``neutral + c (x − neutral)``.

    Args:
        image: NumPy ``(H, W)`` / ``(H, W, C)`` or torch ``(H, W)`` / ``(C, H, W)``.
        params: from :func:`sample_augmentation`.
        output_size: side of the square output; the image is resized by
            ``output_size / min(H, W)`` before cropping (the paper's "resized and cropped
            to 448 × 448"); ``None`` keeps the input size.
        neutral: fill and contrast pivot value.
        order: spline interpolation order (1 = bilinear).
        clip: clip the result to [0, 1].

    Returns:
        The augmented image, same type, layout and dtype as the input.
    """
    _check_params(params)
    chw, is_torch, had_channels = _to_chw(image, "image")
    out = _warp(chw, params, output_size, order, neutral)
    out = neutral + params.contrast * (out - neutral)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return _from_chw(out, image, is_torch, had_channels)


def augment_batch(
    images: torch.Tensor,
    params: Sequence[AugmentationParams],
    *,
    output_size: int | None = None,
    neutral: float = 0.5,
    clip: bool = True,
) -> torch.Tensor:
    """:func:`augment_image` (bilinear) of a whole ``(B, C, H, W)`` batch in one resampling.

    Image ``b`` gets ``params[b]``. The same affine map as :func:`augment_image`, applied
    by one ``grid_sample`` over the batch instead of one spline call per channel (the
    5.1.1 augmentation of every training step); pixels from outside the input take
    ``neutral``, and bilinear weights at the border mix with it, as in SciPy's
    ``mode="constant"``. Equal to :func:`augment_image` to float32 round-off (tested).

    Returns:
        ``(B, C, S, S)`` float32, ``S = output_size`` (or ``(B, C, H, W)``).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise InvalidInputError(f"images must be a (B, C, H, W) tensor, got "
                                f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if len(params) != images.shape[0]:
        raise InvalidInputError(f"need one AugmentationParams per image: {images.shape[0]} images, "
                                f"{len(params)} parameter sets")
    for p in params:
        _check_params(p)
    _, _, h, w = images.shape
    grids, inside = [], []
    for p in params:
        inverse, offset, oh, ow = _inverse_affine(p, h, w, output_size)
        rows, cols = np.meshgrid(np.arange(oh, dtype=np.float64), np.arange(ow, dtype=np.float64),
                                 indexing="ij")
        src = np.einsum("ij,jhw->ihw", inverse, np.stack([rows, cols])) + offset[:, None, None]
        # grid_sample wants (x = col, y = row) in [-1, 1] with align_corners=True.
        grids.append(np.stack([2.0 * src[1] / max(w - 1, 1) - 1.0,
                               2.0 * src[0] / max(h - 1, 1) - 1.0], axis=-1))
        # SciPy's "constant" mode: no interpolation beyond the edge, neutral there.
        eps = 1e-9
        inside.append((src[0] >= -eps) & (src[0] <= h - 1 + eps) & (src[1] >= -eps) & (src[1] <= w - 1 + eps))
    grid = torch.as_tensor(np.stack(grids), dtype=torch.float32, device=images.device)
    keep = torch.as_tensor(np.stack(inside)[:, None], dtype=torch.float32, device=images.device)
    centred = images.float() - neutral
    out = torch.nn.functional.grid_sample(centred, grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=True) * keep
    contrast = torch.tensor([p.contrast for p in params], dtype=torch.float32,
                            device=images.device).view(-1, 1, 1, 1)
    out = neutral + contrast * out
    return out.clamp(0.0, 1.0) if clip else out


def augment_mask(
    mask: np.ndarray | torch.Tensor,
    params: AugmentationParams,
    *,
    output_size: int | None = None,
) -> np.ndarray | torch.Tensor:
    """Apply the geometric part of ``params`` to a mask (nearest neighbour, no contrast).

    Args:
        mask: NumPy ``(H, W)`` / ``(H, W, K)`` or torch ``(H, W)`` / ``(K, H, W)``.
        params: the same parameters as given to :func:`augment_image`.
        output_size: as in :func:`augment_image`.

    Returns:
        The transformed mask, same type, layout and dtype; outside the input is 0/False.
    """
    _check_params(params)
    chw, is_torch, had_channels = _to_chw(mask, "mask")
    out = _warp(chw, params, output_size, 0, 0.0)
    return _from_chw(out, mask, is_torch, had_channels)
