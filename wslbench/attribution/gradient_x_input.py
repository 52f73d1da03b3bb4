"""Gradient × input (Shrikumar et al. 2016), summed over channels."""

from __future__ import annotations

import torch

from wslbench.attribution._utils import input_leaf, target_score
from wslbench.attribution.base import Attribution, register_attribution

__all__ = ["GradientXInput"]


@register_attribution("gradient-x-input")
class GradientXInput(Attribution):
    """Σ_c D_c ∂f/∂D_c per pixel (signed).

    It equals the signed hue-constrained derivative ∂f(m ∘ D)/∂m of Quellec et
    al. 2017 (eq. 3 without the absolute value), and the ε-LRP map of a
    ReLU network with ε → 0 and no biases.

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        with torch.enable_grad():
            leaf = input_leaf(x, create_graph)
            score = target_score(self.model(leaf), target)
            (grad,) = torch.autograd.grad(score.sum(), leaf, create_graph=create_graph)
        return (grad * leaf).sum(dim=1, keepdim=True)
