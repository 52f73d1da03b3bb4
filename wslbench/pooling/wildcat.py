"""WILDCAT pooling: class-wise modalities, top-k⁺ and weighted bottom-k⁻ (Durand et al. 2017).

Rony 2020, eq. 3.8 (eq. 1.9 in the survey) and 3.4.3 for the modalities.
"""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import ConfigError
from wslbench.pooling.base import (
    PoolingHead,
    PoolingOutput,
    is_finite_number,
    linear_maps,
    positive_int,
    register_pooling,
)

__all__ = ["WildcatPooling", "resolve_k", "wildcat_pool"]


def _check_k(name: str, k: object) -> int | float:
    if not is_finite_number(k):
        raise ConfigError(f"WILDCAT {name} must be an int count or a float fraction, got {k!r}")
    if isinstance(k, int) and k < 1:
        raise ConfigError(f"WILDCAT {name} as a count must be ≥ 1, got {k}")
    if isinstance(k, float) and not 0 < k <= 1:
        raise ConfigError(f"WILDCAT {name} as a fraction must be in (0, 1], got {k}")
    return k


def resolve_k(k: int | float, positions: int) -> int:
    """Number of selected positions out of ``positions`` for a count or a fraction.

    An ``int`` is a count, capped at ``positions`` (as in the authors' code, so a
    head still works on the smaller feature maps of test-time down-scaling); a
    ``float`` in ``(0, 1]`` is a fraction, rounded to the nearest integer
    (Python's ``round``, as in the authors' code) and at least 1.
    """
    _check_k("k", k)
    if isinstance(k, int):
        return min(k, positions)
    return max(1, min(positions, round(k * positions)))


def wildcat_pool(
    maps: torch.Tensor, k_pos: int | float, k_neg: int | float, alpha: float
) -> torch.Tensor:
    """``s_c = Z⁺_c / k⁺ + α Z⁻_c / k⁻`` (Rony 2020, eq. 3.8).

    ``Z⁺_c`` (``Z⁻_c``) is the sum of the ``k⁺`` highest (``k⁻`` lowest) values of
    ``M_c``: the mean of the top ``k⁺`` plus ``α`` times the mean of the bottom
    ``k⁻``. The sign is the paper's "+": ``Z⁻_c`` is itself a sum of the lowest
    (typically negative) scores.

    Args:
        maps: ``(B, C, H, W)`` class maps (already averaged over modalities).
        k_pos: ``k⁺``, a count (int) or a fraction of the ``H·W`` positions (float).
        k_neg: ``k⁻``, likewise.
        alpha: weight ``α ≥ 0`` of the lowest-scoring positions.

    Returns:
        ``(B, C)`` scores.
    """
    flat = maps.flatten(2)
    n = flat.shape[2]
    top = flat.topk(resolve_k(k_pos, n), dim=2, largest=True).values.mean(dim=2)
    bottom = flat.topk(resolve_k(k_neg, n), dim=2, largest=False).values.mean(dim=2)
    return top + alpha * bottom


@register_pooling("wildcat")
class WildcatPooling(PoolingHead):
    """``C × M`` maps by a 1×1 convolution, averaged per class, then :func:`wildcat_pool`.

    Class-wise pooling (Rony 2020, 3.2 after eq. 3.8): the features are
    classified into ``C·modalities`` maps, channel ``c·modalities + m`` being
    modality ``m`` of class ``c`` (the authors' layout), and ``M_c`` is their
    average. ``maps`` are the averaged ``M`` ``(B, C, H, W)``.

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C``.
        modalities: maps per class ``M`` (4, as fixed in 3.4.4).
        k_pos: ``k⁺``: an int count or a float fraction in ``(0, 1]`` of the positions.
        k_neg: ``k⁻``: likewise (the original sets ``k⁻ = k⁺``).
        alpha: weight ``α ≥ 0`` of the negative evidence.

    Defaults are the histology setting of 2.1.3.1 (10 % highest and lowest
    positions, ``α = 0.6``); Pascal VOC's best was ``k⁺ = k⁻ = 20``, ``α = 0.2`` (3.4.4).

    Shapes:
        ``(B, K, H, W) -> PoolingOutput(scores (B, C), maps (B, C, H, W))``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        modalities: int = 4,
        k_pos: int | float = 0.1,
        k_neg: int | float = 0.1,
        alpha: float = 0.6,
    ) -> None:
        super().__init__(in_channels, num_classes)
        self.modalities = positive_int("modalities", modalities)
        self.k_pos = _check_k("k_pos", k_pos)
        self.k_neg = _check_k("k_neg", k_neg)
        if not is_finite_number(alpha) or alpha < 0:
            raise ConfigError(f"WILDCAT alpha must be a finite number ≥ 0, got {alpha!r}")
        self.alpha = alpha
        self.classifier = nn.Linear(self.in_channels, self.num_classes * self.modalities)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        all_maps = linear_maps(features, self.classifier)
        b, _, h, w = all_maps.shape
        maps = all_maps.view(b, self.num_classes, self.modalities, h, w).mean(dim=2)
        return PoolingOutput(wildcat_pool(maps, self.k_pos, self.k_neg, self.alpha), maps)
