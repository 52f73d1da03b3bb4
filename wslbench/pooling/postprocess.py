"""From feature-resolution maps to pixel decisions (Rony 2020, 1.3.4, 2.1.2.1, 3.4.2).

* :func:`upsample_maps` — bilinear resize of ``(B, C, h, w)`` maps to the input size
  ("we interpolate the CAMs to match the input size using a bilinear interpolation", 1.3.4).
* :func:`zero_score_labels` — per-pixel labels with a background class: "the
  background class is attributed to a pixel if no foreground class has a score
  higher than 0" (3.4.2), i.e. arg-max over ``[0, M_1, …, M_C]``.
* :func:`binarize_maps` and :func:`localisation_masks` — foreground masks for the
  Dice index (2.1.2.1), thresholded by the head's rule
  (:meth:`~wslbench.pooling.PoolingHead.binarization_threshold`: score > 0 for
  CAMs, attention weight > ``1/(hw)`` for Deep MIL, 1.3.4).
* :func:`tta_predict` — test-time augmentation of 3.4.2: horizontal flip ×
  scales 0.5, 1, 1.5, 2; the 8 map sets are resized back to the input size and
  averaged, and so are the 8 score vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from wslbench.errors import InvalidInputError
from wslbench.pooling.base import PoolingOutput, is_finite_number
from wslbench.pooling.model import WSLModel

__all__ = [
    "TTA_SCALES",
    "binarize_maps",
    "localisation_masks",
    "tta_predict",
    "upsample_maps",
    "zero_score_labels",
]

TTA_SCALES: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)


def _check_maps(maps: torch.Tensor, what: str = "maps") -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or not maps.is_floating_point():
        got = (
            f"shape {tuple(maps.shape)} {maps.dtype}"
            if isinstance(maps, torch.Tensor)
            else (type(maps).__name__)
        )
        raise InvalidInputError(f"{what} must be a floating (B, C, H, W) tensor, got {got}")


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)
    ):
        raise InvalidInputError(f"size must be (height, width), two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def upsample_maps(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of maps to ``size = (H, W)``.

    Shapes:
        ``(B, C, h, w) -> (B, C, H, W)``; returned unchanged when already that size.
    """
    _check_maps(maps)
    target = _check_size(size)
    if tuple(maps.shape[2:]) == target:
        return maps
    return F.interpolate(maps, size=target, mode="bilinear", align_corners=False)


def zero_score_labels(maps: torch.Tensor) -> torch.Tensor:
    """Per-pixel label with background: 0 where no class scores above 0, else ``1 + argmax_c M_c``.

    Rony 2020, 3.4.2: a 0 is prepended to every pixel's score vector and the
    arg-max taken; a tie with 0 (a best score of exactly 0) is background.
    Equivalent to a ReLU followed by the arg-max with background on all-zero pixels.

    Shapes:
        ``(B, C, H, W) -> (B, H, W)`` int64 labels in ``[0, C]``, foreground class
        ``c`` as ``c + 1``.
    """
    _check_maps(maps)
    background = maps.new_zeros((maps.shape[0], 1, *maps.shape[2:]))
    return torch.cat([background, maps], dim=1).argmax(dim=1)


def binarize_maps(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Foreground where ``maps > threshold`` (strictly: "superior to", 1.3.4; "higher than 0", 3.4.2).

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)`` bool.
    """
    _check_maps(maps)
    if not is_finite_number(threshold):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
    return maps > threshold


def localisation_masks(
    model: WSLModel, x: torch.Tensor, target: int | torch.Tensor
) -> torch.Tensor:
    """Foreground masks of class ``target`` at the input size, for the Dice index (2.1.2.1).

    The maps of ``target`` (the true image-level label, or the metastatic class)
    are upsampled bilinearly to ``x``'s size and thresholded with
    ``model.head.binarization_threshold(h, w)`` of the feature map ``h × w``.

    Args:
        model: a :class:`WSLModel`.
        x: ``(B, D, H, W)`` images.
        target: one class index for all samples, or ``(B,)`` indices.

    Returns:
        ``(B, 1, H, W)`` bool masks.
    """
    maps = model.cams(x)
    b, c, h, w = maps.shape
    index = torch.as_tensor(target, device=maps.device)
    if index.is_floating_point() or index.ndim > 1:
        raise InvalidInputError(f"target must be an int or (B,) class indices, got {target!r}")
    index = index.long().expand(b) if index.ndim == 0 else index.long()
    if index.shape != (b,) or (index < 0).any() or (index >= c).any():
        raise InvalidInputError(
            f"target must be an int or {b} class indices in [0, {c}), got {target!r}"
        )
    chosen = maps[torch.arange(b, device=maps.device), index][:, None]
    upsampled = upsample_maps(chosen, tuple(x.shape[2:]))
    return binarize_maps(upsampled, model.head.binarization_threshold(h, w))


def tta_predict(
    model: WSLModel,
    x: torch.Tensor,
    scales: Sequence[float] = TTA_SCALES,
    flip: bool = True,
) -> PoolingOutput:
    """Test-time augmented scores and maps (Rony 2020, 3.4.2).

    For every scale ``s`` the batch is resized bilinearly to
    ``(round(s·H), round(s·W))`` (at least 1 pixel); with ``flip`` it is run
    together with its horizontal mirror in one batch of ``2B``. The mirrored
    maps are flipped back, every map set is resized bilinearly to ``(H, W)``,
    and maps and scores are averaged over the ``len(scales) × (2 if flip else 1)``
    variants. The model's train/eval mode and grad mode are the caller's
    (call ``model.eval()`` and use ``torch.no_grad()`` for inference). For
    attention heads the averaged maps mix feature maps of different sizes whose
    weights sum to 1 each, so ``1/(hw)`` thresholds no longer apply exactly.

    Args:
        model: a :class:`WSLModel`.
        x: ``(B, D, H, W)`` images.
        scales: resize factors, each finite and > 0.
        flip: also use the horizontally flipped images.

    Returns:
        ``PoolingOutput(scores (B, C), maps (B, C, H, W))`` at the input size.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InvalidInputError(f"tta_predict expects images (B, D, H, W), got {got}")
    if (
        isinstance(scales, str | bytes)
        or not isinstance(scales, Sequence)
        or len(scales) == 0
        or any(not is_finite_number(s) or s <= 0 for s in scales)
    ):
        raise InvalidInputError(
            f"scales must be a non-empty sequence of numbers > 0, got {scales!r}"
        )
    b = x.shape[0]
    size = (x.shape[2], x.shape[3])
    score_sum: torch.Tensor | None = None
    map_sum: torch.Tensor | None = None
    for scale in scales:
        scaled_size = tuple(max(1, round(scale * n)) for n in size)
        scaled = (
            x
            if scaled_size == size
            else F.interpolate(x, size=scaled_size, mode="bilinear", align_corners=False)
        )
        batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
        scores, maps = model.predict(batch)
        if flip:
            scores = scores[:b] + scores[b:]
            maps = maps[:b] + maps[b:].flip(-1)
        maps = upsample_maps(maps, size)
        score_sum = scores if score_sum is None else score_sum + scores
        map_sum = maps if map_sum is None else map_sum + maps
    count = len(scales) * (2 if flip else 1)
    return PoolingOutput(score_sum / count, map_sum / count)
