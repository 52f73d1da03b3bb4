"""The attention scoring function ψ of Deep MIL (Ilse et al. 2018), one or several branches.

Private helper of :mod:`wslbench.pooling.deepmil` and
:mod:`wslbench.pooling.deepmil_multi` (not public API).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.pooling.base import linear_maps, positive_int

__all__: list[str] = []


class AttentionScore(nn.Module):
    """``ψ₁(f) = w tanh(V f)`` or gated ``ψ₂(f) = w [tanh(V f) ⊙ σ(U f)]`` at every position.

    Rony 2020, eq. 1.5–1.6, with ``w ∈ R^L`` and ``V, U ∈ R^{L×K}``. ``V`` and
    ``U`` carry a bias, as in the authors' released code; ``w`` does not (a
    constant added to every position's score cancels in the softmax of eq. 1.4,
    so its gradient would be zero). ``branches`` independent copies
    (``V_r, U_r, w_r``) are evaluated at once.

    Shapes:
        ``(B, K, H, W) -> (B, branches, H, W)`` attention logits.
    """

    def __init__(self, in_channels: int, hidden_channels: int, branches: int, gated: bool) -> None:
        super().__init__()
        self.hidden_channels = positive_int("hidden_channels", hidden_channels)
        self.branches = branches
        self.gated = bool(gated)
        width = branches * self.hidden_channels
        self.V = nn.Linear(in_channels, width)
        self.U = nn.Linear(in_channels, width) if self.gated else None
        bound = 1.0 / math.sqrt(self.hidden_channels)  # nn.Linear's default initialisation
        self.w = nn.Parameter(torch.empty(branches, self.hidden_channels).uniform_(-bound, bound))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        hidden = torch.tanh(linear_maps(features, self.V))
        if self.U is not None:
            hidden = hidden * torch.sigmoid(linear_maps(features, self.U))
        hidden = hidden.view(b, self.branches, self.hidden_channels, h, w)
        return torch.einsum("brlhw,rl->brhw", hidden, self.w)


def attention_weights(logits: torch.Tensor) -> torch.Tensor:
    """``A_{i,j} = exp(ψ_{i,j}) / Σ exp(ψ)`` over the positions (eq. 1.4); ``(B, R, H, W)`` in and out."""
    return F.softmax(logits.flatten(2), dim=2).view_as(logits)
