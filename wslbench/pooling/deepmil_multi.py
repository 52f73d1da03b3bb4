"""Deep MIL adapted to several classes by replicating its attention and scoring (Rony 2020, 1.3.4)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.pooling._attention import AttentionScore, attention_weights
from wslbench.pooling.base import PoolingHead, PoolingOutput, register_pooling

__all__ = ["DeepMILMulti"]


@register_pooling("deepmil-multi")
class DeepMILMulti(PoolingHead):
    """One Deep MIL branch per class: ``f_c = Σ A_{c,i,j} F_{i,j}``, ``s_c = w_c · f_c + b_c``.

    Rony 2020, 1.3.4: "for datasets with more than two classes we adapt this
    method by replicating the pooling and scoring module to match the number
    of predicted classes" (the "Deep MIL (adapted)" of Table 3.4). Each class
    ``c`` has its own ψ (``V_c``, ``U_c``, ``w_c``; eq. 1.5–1.6), its own
    attention ``A_c`` (softmax over positions, eq. 1.4) and its own one-output
    scorer; the scorers are stored together as ``classifier: K → C`` whose row
    ``c`` scores ``f_c``. ``maps`` are the per-class attention maps ``A``,
    each summing to 1, binarised at ``1/(HW)`` (1.3.4).

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C`` (= number of branches).
        hidden_channels: ``L`` per branch (128 as in Ilse et al.).
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
        self.attention = AttentionScore(
            self.in_channels, hidden_channels, self.num_classes, self.gated
        )
        self.classifier = nn.Linear(self.in_channels, self.num_classes)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        maps = attention_weights(self.attention(features))  # (B, C, H, W)
        bags = torch.einsum("bchw,bkhw->bck", maps, features)
        scores = (bags * self.classifier.weight).sum(dim=2) + self.classifier.bias
        return PoolingOutput(scores, maps)
