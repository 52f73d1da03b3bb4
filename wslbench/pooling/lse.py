"""Log-sum-exp pooling of class activation maps (Pinheiro & Collobert 2015; Rony 2020, eq. 3.6–3.7)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import ConfigError
from wslbench.pooling.base import (
    PoolingHead,
    PoolingOutput,
    is_finite_number,
    linear_maps,
    register_pooling,
)

__all__ = ["LSEPooling", "lse_pool"]


def lse_pool(maps: torch.Tensor, q: float) -> torch.Tensor:
    """Numerically stable ``s_c = (1/q) log[(1/HW) Σ_{i,j} exp(q M_{c,i,j})]``.

    Rony 2020, eq. 3.7: with ``m = max M_c``, ``s_c = m + (1/q) log[(1/HW) Σ
    exp(q (M_{c,i,j} − m))]``. The bracket is written ``1 + mean(expm1(·))`` and
    evaluated with ``log1p``/``expm1`` so that small ``q`` (close to the mean)
    loses no precision either; the maximum is taken per sample and class and
    detached (its gradient cancels exactly). ``s_c`` lies between the mean
    (``q → 0``) and the maximum (``q → ∞``) of ``M_c``.

    Args:
        maps: ``(B, C, H, W)`` class activation maps.
        q: smoothness ``q > 0``.

    Returns:
        ``(B, C)`` scores.
    """
    flat = maps.flatten(2)
    top = flat.amax(dim=2, keepdim=True).detach()
    bracket = torch.expm1(q * (flat - top)).mean(dim=2)  # in (-1, 0]: a maximum gives 0
    return top[..., 0] + torch.log1p(bracket) / q


@register_pooling("lse")
class LSEPooling(PoolingHead):
    """``M = W F + b`` at every position, LSE-pooled per class (:func:`lse_pool`).

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C``.
        q: smoothness ``q > 0``; the default 10 is the histology setting of
            Rony 2020, 2.1.3.1 (Pascal VOC's best was 0.5, 3.4.4).

    Shapes:
        ``(B, K, H, W) -> PoolingOutput(scores (B, C), maps (B, C, H, W))``.
    """

    def __init__(self, in_channels: int, num_classes: int, q: float = 10.0) -> None:
        super().__init__(in_channels, num_classes)
        if not is_finite_number(q) or q <= 0:
            raise ConfigError(f"LSE q must be a finite number > 0, got {q!r}")
        self.q = q
        self.classifier = nn.Linear(self.in_channels, self.num_classes)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        maps = linear_maps(features, self.classifier)
        return PoolingOutput(lse_pool(maps, self.q), maps)
