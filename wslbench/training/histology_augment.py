"""Training augmentations of the histology experiments: random crop, flips, 90° turns, colour jitter.

Rony 2020, 2.1.3.1 (repeated in 4.4.2 for GlaS): "we randomly flip the images
during training. We also perform random color jittering on the images with
parameters brightness, contrast and saturation at 0.5 and hue at 0.05 (from the
PyTorch framework)"; patches of (448, 448) (BreakHis) or (416, 416) (GlaS; 448 in
4.4.2) "at random locations and rotate them with a random angle in
{0°, 90°, 180°, 270°}"; CAMELYON16 images are only rotated (and flipped and
jittered, 4.4.2), not cropped. 4.4.2 names the flip "random horizontal
flipping", hence ``hflip_p=0.5`` and ``vflip_p=0`` by default (with the four
rotations, a horizontal flip already reaches all eight symmetries of the square).

Following TorchIO's ``RandomNoise`` → ``Noise`` split, :class:`RandomHistologyAugment`
only *draws* the parameters of a batch into a :class:`HistologyAugmentRecord`;
:func:`augment_images` and :func:`augment_masks` apply a record
deterministically, so a mask ``(B, H, W)`` gets exactly the geometric transform of
its image and any batch can be replayed from its record.

Order of operations (the thesis does not state one): crop → horizontal flip →
vertical flip → rotation by ``k · 90°`` counter-clockwise (``torch.rot90`` on the
last two axes) → colour jitter (images only, so contrast uses the mean of the
crop). Colour jitter follows torchvision's ``ColorJitter``: factors drawn
uniformly in ``[max(0, 1 - b), 1 + b]`` for brightness, contrast and saturation and
in ``[-h, h]`` for hue, the four operations applied in a random order per image
(``torch.randperm(4)`` in torchvision), with the same blend and HSV formulas, on
float images in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.seeding import numpy_rng

__all__ = [
    "HistologyAugmentRecord",
    "RandomHistologyAugment",
    "augment_images",
    "augment_masks",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
]

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class HistologyAugmentRecord:
    """The drawn parameters of one batch (one entry per image).

    Attributes:
        height: input height the record was drawn for.
        width: input width the record was drawn for.
        crop_size: side of the square crop, or ``None`` for no crop.
        crop_top: ``(B,)`` int64 top row of each crop (0 without crop).
        crop_left: ``(B,)`` int64 left column of each crop (0 without crop).
        hflip: ``(B,)`` bool, mirror left–right.
        vflip: ``(B,)`` bool, mirror top–bottom.
        rot90: ``(B,)`` int64 in 0..3, quarter turns counter-clockwise.
        brightness: ``(B,)`` brightness factors (1 = unchanged).
        contrast: ``(B,)`` contrast factors (1 = unchanged).
        saturation: ``(B,)`` saturation factors (1 = unchanged).
        hue: ``(B,)`` hue shifts in turns, in [-0.5, 0.5] (0 = unchanged).
        jitter_order: ``(B, 4)`` int64 permutation of (brightness, contrast,
            saturation, hue) = (0, 1, 2, 3): the order the colour operations run.
    """

    height: int
    width: int
    crop_size: int | None
    crop_top: torch.Tensor
    crop_left: torch.Tensor
    hflip: torch.Tensor
    vflip: torch.Tensor
    rot90: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    jitter_order: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Number of images the record was drawn for."""
        return int(self.hflip.shape[0])


def _check_range(name: str, value: float, high: float | None = None) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if not ok or (high is not None and value > high):
        bound = f"[0, {high}]" if high is not None else "a non-negative number"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


class RandomHistologyAugment:
    """Draws crop, flip, rotation and colour-jitter parameters (Rony 2020, 2.1.3.1).

    Args:
        brightness: jitter strength ``b``, factor in ``[max(0, 1 - b), 1 + b]`` (0.5).
        contrast: jitter strength, as brightness (0.5).
        saturation: jitter strength, as brightness (0.5).
        hue: hue shift drawn in ``[-hue, hue]``, at most 0.5 (0.05).
        hflip_p: probability of a horizontal flip (0.5).
        vflip_p: probability of a vertical flip (0: the thesis flips horizontally).
        rotate90: draw a rotation in {0°, 90°, 180°, 270°} uniformly; needs a square
            output (crop or input).
        crop_size: side of a square crop at a uniform random location (416 or 448
            for GlaS/BreakHis), or ``None`` for no crop (CAMELYON16).
    """

    def __init__(
        self,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        hue: float = 0.05,
        hflip_p: float = 0.5,
        vflip_p: float = 0.0,
        rotate90: bool = True,
        crop_size: int | None = None,
    ) -> None:
        _check_range("brightness", brightness)
        _check_range("contrast", contrast)
        _check_range("saturation", saturation)
        _check_range("hue", hue, 0.5)
        _check_range("hflip_p", hflip_p, 1.0)
        _check_range("vflip_p", vflip_p, 1.0)
        if crop_size is not None and (
            isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1
        ):
            raise ConfigError(f"crop_size must be a positive integer or None, got {crop_size!r}")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.hflip_p = hflip_p
        self.vflip_p = vflip_p
        self.rotate90 = rotate90
        self.crop_size = crop_size

    def sample(
        self,
        batch_size: int,
        height: int,
        width: int,
        seed: int | np.random.Generator | None = None,
    ) -> HistologyAugmentRecord:
        """Draw the parameters of a batch of ``batch_size`` images of ``height × width``.

        Args:
            batch_size: number of images.
            height: input height.
            width: input width.
            seed: an int seed, or one ``np.random.Generator`` reused across batches
                so that successive batches differ.
        """
        for name, value in (("batch_size", batch_size), ("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.crop_size is not None and (self.crop_size > height or self.crop_size > width):
            raise InvalidInputError(
                f"crop_size {self.crop_size} does not fit in {height}×{width} images"
            )
        out_h, out_w = (height, width) if self.crop_size is None else (self.crop_size,) * 2
        if self.rotate90 and out_h != out_w:
            raise InvalidInputError(
                f"90° rotations need square images or a square crop, got {out_h}×{out_w}; "
                "set crop_size or rotate90=False"
            )
        rng = numpy_rng(seed)
        b = batch_size

        def factors(strength: float) -> np.ndarray:
            return rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength, size=b)

        if self.crop_size is None:
            top = left = np.zeros(b, dtype=np.int64)
        else:
            top = rng.integers(0, height - self.crop_size + 1, size=b)
            left = rng.integers(0, width - self.crop_size + 1, size=b)
        hflip = rng.random(b) < self.hflip_p
        vflip = rng.random(b) < self.vflip_p
        rot = rng.integers(0, 4, size=b) if self.rotate90 else np.zeros(b, dtype=np.int64)
        brightness = factors(self.brightness)
        contrast = factors(self.contrast)
        saturation = factors(self.saturation)
        hue = rng.uniform(-self.hue, self.hue, size=b)
        order = np.stack([rng.permutation(4) for _ in range(b)])
        as_float = {"dtype": torch.float32}
        return HistologyAugmentRecord(
            height=height,
            width=width,
            crop_size=self.crop_size,
            crop_top=torch.as_tensor(top, dtype=torch.int64),
            crop_left=torch.as_tensor(left, dtype=torch.int64),
            hflip=torch.as_tensor(hflip),
            vflip=torch.as_tensor(vflip),
            rot90=torch.as_tensor(rot, dtype=torch.int64),
            brightness=torch.as_tensor(brightness, **as_float),
            contrast=torch.as_tensor(contrast, **as_float),
            saturation=torch.as_tensor(saturation, **as_float),
            hue=torch.as_tensor(hue, **as_float),
            jitter_order=torch.as_tensor(order, dtype=torch.int64),
        )


def _check_batch(
    x: torch.Tensor, record: HistologyAugmentRecord, name: str, layouts: dict[int, str]
) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim not in layouts:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        expected = " or ".join(layouts.values())
        raise InvalidInputError(f"{name} must be a tensor {expected}, got {shape}")
    expected = (record.batch_size, record.height, record.width)
    got = (x.shape[0], x.shape[-2], x.shape[-1])
    if got != expected:
        raise InvalidInputError(
            f"{name} has batch×H×W {got} but the record was drawn for {expected}"
        )


def _geometric(x: torch.Tensor, record: HistologyAugmentRecord) -> torch.Tensor:
    """Crop, flips and rotations of ``record`` on the last two axes of ``x`` ``(B, ..., H, W)``."""
    if record.crop_size is not None:
        s = record.crop_size
        x = torch.stack(
            [
                x[i, ..., t : t + s, c : c + s]
                for i, (t, c) in enumerate(zip(record.crop_top.tolist(), record.crop_left.tolist()))
            ]
        )
    else:
        x = x.clone()
    x[record.hflip] = x[record.hflip].flip(-1)
    x[record.vflip] = x[record.vflip].flip(-2)
    for k in (1, 2, 3):
        sel = record.rot90 == k
        if sel.any():
            x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
    return x


def _factor(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).view(-1, 1, 1, 1)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(dim=1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``clamp(f · x, 0, 1)`` per image; ``images`` ``(N, 3, H, W)``, ``factors`` ``(N,)``."""
    return _blend(images, torch.zeros_like(images), _factor(factors, images))


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the mean grey level of each image: ``clamp(f · x + (1 - f) · mean)``."""
    mean = _grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, _factor(factors, images))


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the grey-level image: ``clamp(f · x + (1 - f) · gray(x))``."""
    return _blend(images, _grayscale(images), _factor(factors, images))


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns per image (RGB → HSV, ``h + shift mod 1``, → RGB)."""
    r, g, b = images.unbind(dim=1)
    v = images.amax(dim=1)
    c = v - images.amin(dim=1)
    s = torch.where(v > 0, c / v.clamp_min(1e-12), torch.zeros_like(v))
    safe_c = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(
        v == r,
        (g - b) / safe_c,
        torch.where(v == g, 2.0 + (b - r) / safe_c, 4.0 + (r - g) / safe_c),
    )
    h = torch.where(c > 0, h, torch.zeros_like(h)) / 6.0
    h = torch.remainder(h + shifts.to(images.dtype).view(-1, 1, 1), 1.0)
    # HSV -> RGB: channel n in (5, 3, 1) is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + 6.0 * h, 6.0)
        out.append(v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(out, dim=1).clamp(0.0, 1.0)


_JITTER_OPS = (
    ("brightness", adjust_brightness, 1.0),
    ("contrast", adjust_contrast, 1.0),
    ("saturation", adjust_saturation, 1.0),
    ("hue", adjust_hue, 0.0),
)


def augment_images(images: torch.Tensor, record: HistologyAugmentRecord) -> torch.Tensor:
    """Apply ``record`` (geometry, then colour jitter) to ``(B, 3, H, W)`` images in [0, 1].

    Returns:
        ``(B, 3, h, w)`` with ``h = w = crop_size`` when cropping, else ``(H, W)``.
    """
    _check_batch(images, record, "images", {4: "(B, 3, H, W)"})
    if images.shape[1] != 3 or not images.is_floating_point():
        raise InvalidInputError(
            f"images must be float RGB (B, 3, H, W), got {tuple(images.shape)} {images.dtype}"
        )
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise InvalidInputError(
            f"images must lie in [0, 1] for colour jitter, got range "
            f"[{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    x = _geometric(images, record)
    for position in range(4):
        for op_index, (field, op, neutral) in enumerate(_JITTER_OPS):
            values = getattr(record, field)
            sel = (record.jitter_order[:, position] == op_index) & (values != neutral)
            if sel.any():
                x[sel] = op(x[sel], values[sel])
    return x


def augment_masks(masks: torch.Tensor, record: HistologyAugmentRecord) -> torch.Tensor:
    """Apply the geometric part of ``record`` to masks ``(B, H, W)`` or ``(B, K, H, W)``.

    Any dtype works (bool, integer labels, float one-hot); values are only moved.
    """
    _check_batch(masks, record, "masks", {3: "(B, H, W)", 4: "(B, K, H, W)"})
    return _geometric(masks, record)
