"""Attention-based Deep MIL pooling (Ilse et al. 2018; Rony 2020, eq. 1.4–1.6, 3.9)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.pooling._attention import AttentionScore, attention_weights
from wslbench.pooling.base import PoolingHead, PoolingOutput, register_pooling

__all__ = ["DeepMIL"]


@register_pooling("deepmil")
class DeepMIL(PoolingHead):
    """One attention map per image: ``f = Σ_{i,j} A_{i,j} F_{i,j}``, ``s = W f + b``.

    Rony 2020, eq. 1.4 (3.9): ``A`` is the softmax over positions of the
    scoring function ψ₁ (eq. 1.5) or, with ``gated=True``, ψ₂ (eq. 1.6). The
    original is binary (``num_classes=1``, a sigmoid on the logit); with
    ``num_classes > 1`` every class shares the one attention map and only the
    classifier ``φ: K → C`` differs — for one attention per class see
    ``"deepmil-multi"``. ``maps`` repeats ``A`` for each class, ``(B, C, H, W)``;
    each sums to 1 over the positions, so a position is foreground when its
    weight exceeds ``1/(HW)`` (1.3.4, :meth:`binarization_threshold`).

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C`` (1 in the original).
        hidden_channels: ``L``, the width of ``V`` (and ``U``); 128 as in Ilse et al.
        gated: use the gated ψ₂ instead of ψ₁.

    Shapes:
        ``(B, K, H, W) -> PoolingOutput(scores (B, C), maps (B, C, H, W))``.
    """

    attention_maps = True

    def __init__(
        self, in_channels: int, num_classes: int, hidden_channels: int = 128, gated: bool = False
    ) -> None:
        super().__init__(in_channels, num_classes)
        self.hidden_channels = hidden_channels
        self.gated = bool(gated)
        self.attention = AttentionScore(self.in_channels, hidden_channels, 1, self.gated)
        self.classifier = nn.Linear(self.in_channels, self.num_classes)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        weights = attention_weights(self.attention(features))  # (B, 1, H, W)
        bag = torch.einsum("bhw,bkhw->bk", weights[:, 0], features)
        maps = weights.repeat(1, self.num_classes, 1, 1)
        return PoolingOutput(self.classifier(bag), maps)
