"""Global max pooling of class activation maps (Oquab et al. 2015; Rony 2020, 3.2)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.pooling.base import PoolingHead, PoolingOutput, linear_maps, register_pooling

__all__ = ["MaxPooling"]


@register_pooling("max")
class MaxPooling(PoolingHead):
    """``M = W F + b`` at every position, ``s_c = max_{i,j} M_{c,i,j}``.

    Rony 2020, 3.2 ("replacing the final average pooling by a max pooling");
    it tends to focus on the most discriminative region only. When several
    positions tie for the maximum the gradient is shared among them
    (``torch.amax``).

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
        return PoolingOutput(maps.amax(dim=(2, 3)), maps)
