"""Global average pooling of class activation maps, CAM (Zhou et al. 2016; Rony 2020, eq. 3.4)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.pooling.base import PoolingHead, PoolingOutput, linear_maps, register_pooling

__all__ = ["GlobalAveragePooling"]


@register_pooling("gap")
class GlobalAveragePooling(PoolingHead):
    """CAM head: ``M = W F + b`` at every position, ``s_c = (1/HW) Σ_{i,j} M_{c,i,j}``.

    Rony 2020, eq. 3.3–3.4 (eq. 1.2–1.3, 1.7 in the survey): because the
    classifier is linear, averaging the maps equals classifying the averaged
    features, ``s = W (1/HW Σ F_{i,j}) + b`` (tested). The classifier is an
    ``nn.Linear`` (``self.classifier``) applied as a 1×1 convolution, so
    :class:`wslbench.attribution.CAM` can read its weights; Grad-CAM on the
    features equals ``ReLU(M_c − b_c) / (HW)`` (1.3.4, tested).

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C``.

    Shapes:
        ``(B, K, H, W) -> PoolingOutput(scores (B, C), maps (B, C, H, W))``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, num_classes)
        self.classifier = nn.Linear(self.in_channels, self.num_classes)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        maps = linear_maps(features, self.classifier)
        return PoolingOutput(maps.mean(dim=(2, 3)), maps)
