"""Localisation of attribution maps against ground-truth masks (2D and 3D).

* :func:`pointing_game` — Zhang et al. 2018 ("Top-down neural attention by
  excitation backprop", IJCV, section 5.1): a hit when the map's maximum lies in
  the object mask, optionally within a tolerance of it.
* :func:`energy_in_mask` — the energy-based pointing game (Wang et al. 2020,
  "Score-CAM", section 5.2): the share of the map's positive energy that falls
  inside the mask.

Maps are ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` (the attribution interface of
``wslbench.attribution``); masks have the same shape (or lack the channel axis)
and are bool or 0/1.
"""

from __future__ import annotations

import torch

from wslbench.errors import InvalidInputError

__all__ = ["check_maps_and_masks", "energy_in_mask", "pointing_game"]


def check_maps_and_masks(
    maps: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(maps (B, 1, *S) float, masks (B, 1, *S) bool)`` on the maps' device."""
    if not isinstance(maps, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise InvalidInputError(
            f"maps and masks must be torch tensors, got {type(maps).__name__} and "
            f"{type(masks).__name__}"
        )
    if maps.ndim not in (4, 5) or maps.shape[1] != 1:
        raise InvalidInputError(
            f"maps must be (B, 1, H, W) or (B, 1, D, H, W), got shape {tuple(maps.shape)}"
        )
    if masks.ndim == maps.ndim - 1:
        masks = masks.unsqueeze(1)
    if masks.shape != maps.shape:
        raise InvalidInputError(
            f"masks must have the maps' shape {tuple(maps.shape)} (channel axis optional), "
            f"got {tuple(masks.shape)}"
        )
    if not torch.isfinite(maps).all():
        raise InvalidInputError("maps contain NaN or Inf; expected finite values")
    if masks.dtype != torch.bool:
        if not ((masks == 0) | (masks == 1)).all():
            raise InvalidInputError("masks must be bool or hold only 0 and 1")
        masks = masks != 0
    return maps.float(), masks.to(maps.device)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: float = 0) -> torch.Tensor:
    """Pointing-game hits: does each map's arg-max fall in (or near) its mask?

    Zhang et al. 2018, section 5.1 (they use a 15-pixel tolerance). The arg-max is
    the first maximal element in row-major order. With ``tolerance > 0`` a hit
    means some mask pixel lies within Euclidean distance ``tolerance`` (in
    pixels/voxels) of the arg-max.

    Args:
        maps: ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` attribution maps.
        masks: masks of the same shape (channel axis optional), bool or 0/1; every
            mask must be non-empty (the game is undefined otherwise).
        tolerance: distance in pixels, ``>= 0``.

    Returns:
        ``(B,)`` bool tensor of hits; ``.float().mean()`` is the pointing accuracy.
    """
    maps, masks = check_maps_and_masks(maps, masks)
    if not tolerance >= 0:
        raise InvalidInputError(f"tolerance must be >= 0 pixels, got {tolerance}")
    empty = ~masks.flatten(1).any(dim=1)
    if empty.any():
        raise InvalidInputError(
            f"pointing game needs a non-empty mask per sample; samples "
            f"{empty.nonzero()[:, 0].tolist()} have empty masks"
        )
    spatial = maps.shape[2:]
    flat_idx = maps.flatten(1).argmax(dim=1)  # (B,)
    if tolerance == 0:
        return masks.flatten(1).gather(1, flat_idx[:, None])[:, 0]
    # squared distance of every location to the arg-max, one axis at a time: (B, N)
    dist2 = torch.zeros(maps.shape[0], masks[0].numel(), device=maps.device)
    stride = 1
    for size in reversed(spatial):
        coord = torch.arange(size, device=maps.device)
        grid = coord.repeat_interleave(stride).repeat(masks[0].numel() // (size * stride))
        peak = (flat_idx // stride) % size
        dist2 += (grid[None, :] - peak[:, None]).float() ** 2
        stride *= size
    near = dist2 <= float(tolerance) ** 2
    return (near & masks.flatten(1)).any(dim=1)


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive energy inside its mask.

    ``sum(relu(map) · mask) / sum(relu(map))`` (Wang et al. 2020, section 5.2).
    A map with no positive value has nothing pointing into the mask: its score is 0.

    Args:
        maps: ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` attribution maps.
        masks: masks of the same shape (channel axis optional), bool or 0/1.

    Returns:
        ``(B,)`` float tensor in [0, 1].
    """
    maps, masks = check_maps_and_masks(maps, masks)
    pos = maps.clamp_min(0).flatten(1)
    total = pos.sum(dim=1)
    inside = (pos * masks.flatten(1)).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(pos.dtype).tiny), 0.0)
