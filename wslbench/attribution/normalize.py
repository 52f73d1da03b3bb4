"""Display normalisation of attribution maps.

Every method in :mod:`wslbench.attribution` returns a *raw* map (its natural
scale and sign); nothing is rescaled unless :func:`normalize` is called, so
maps stay comparable across images and models for metrics and training.
"""

from __future__ import annotations

import torch

from wslbench.errors import ConfigError, InvalidInputError

__all__ = ["normalize", "NORMALIZE_POLICIES"]

NORMALIZE_POLICIES: tuple[str, ...] = ("none", "abs-max", "min-max", "percentile")


def _quantile(flat: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row linear-interpolation quantile of ``(B, N)`` (no size limit, unlike torch.quantile)."""
    ordered = flat.sort(dim=1).values
    pos = q * (flat.shape[1] - 1)
    low = int(pos)
    high = min(low + 1, flat.shape[1] - 1)
    frac = pos - low
    return ordered[:, low] * (1 - frac) + ordered[:, high] * frac


def _scale(flat: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    span = (high - low)[:, None]
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (flat - low[:, None]) / safe, torch.zeros_like(flat))


def normalize(
    attribution: torch.Tensor,
    policy: str = "abs-max",
    *,
    p_low: float = 1.0,
    p_high: float = 99.0,
) -> torch.Tensor:
    """Rescale each sample's map of a ``(B, ...)`` batch for display.

    Policies (each sample on its own):

    - ``"none"``: the raw map, unchanged.
    - ``"abs-max"``: divide by ``max |map|`` → ``[-1, 1]``, sign kept.
    - ``"min-max"``: ``(map - min) / (max - min)`` → ``[0, 1]``.
    - ``"percentile"``: clip to the ``[p_low, p_high]`` percentiles (linear
      interpolation), then scale that range to ``[0, 1]``.

    An all-constant map (zero span or zero maximum) becomes all zeros.

    Args:
        attribution: maps ``(B, ...)``, e.g. ``(B, 1, H, W)``.
        policy: one of :data:`NORMALIZE_POLICIES`.
        p_low: lower percentile in ``[0, 100]`` (``"percentile"`` only).
        p_high: upper percentile in ``[0, 100]``, above ``p_low``.

    Returns:
        A tensor shaped like ``attribution``.
    """
    if policy not in NORMALIZE_POLICIES:
        raise ConfigError(
            f"unknown normalisation policy {policy!r}; expected one of: {', '.join(NORMALIZE_POLICIES)}"
        )
    if (
        not isinstance(attribution, torch.Tensor)
        or attribution.ndim < 1
        or attribution.numel() == 0
    ):
        raise InvalidInputError("normalize expects a non-empty (B, ...) tensor of maps")
    if policy == "none":
        return attribution
    flat = attribution.reshape(attribution.shape[0], -1)
    if policy == "abs-max":
        peak = flat.abs().amax(dim=1, keepdim=True)
        out = torch.where(peak > 0, flat / torch.where(peak > 0, peak, 1), torch.zeros_like(flat))
    elif policy == "min-max":
        out = _scale(flat, flat.amin(dim=1), flat.amax(dim=1))
    else:
        if not 0.0 <= p_low < p_high <= 100.0:
            raise InvalidInputError(
                f"percentiles must satisfy 0 <= p_low < p_high <= 100, got {p_low}, {p_high}"
            )
        low = _quantile(flat, p_low / 100.0)
        high = _quantile(flat, p_high / 100.0)
        clipped = torch.minimum(torch.maximum(flat, low[:, None]), high[:, None])
        out = _scale(clipped, low, high)
    return out.reshape(attribution.shape)
