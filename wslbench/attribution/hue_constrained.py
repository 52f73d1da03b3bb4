"""Hue-constrained sensitivity criterion π (Quellec et al. 2017, section 3.5, eq. 3)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.attribution._utils import target_score
from wslbench.attribution.base import Attribution, register_attribution

__all__ = ["HueConstrainedSensitivity"]


@register_attribution("hue-constrained")
class HueConstrainedSensitivity(Attribution):
    """π_{n,x,y} = |∂f_n(m ∘ D)/∂m_{n,x,y}| at m = 1 (eq. 3).

    ``m`` has one value per pixel (shape ``(B, 1, *spatial)``) broadcast over
    the colour channels, so the perturbation it measures scales all channels
    of a pixel by the same factor and preserves the hue. By the chain rule
    π = |Σ_c D_c ∂f/∂D_c|, the absolute value of gradient × input summed over
    channels (tested). For 3D single-channel volumes the mask multiplies the
    one channel.

    With ``create_graph=True`` the map is differentiable with respect to the
    model's parameters (double backpropagation), as the sparsity-enhanced
    training of eq. 6 needs (the L1 norm of π is added to the loss; m plays
    the role of the input, section 4.2). With piecewise-linear layers (leaky
    ReLU, max pooling) the map's derivative w.r.t. the weights exists almost
    everywhere but the second derivative of f is zero between kinks.

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)`` or ``(B, K)``.
        signed: return ∂f/∂m itself (no absolute value): positive where
            brightening the pixel raises the score. Default ``False`` (eq. 3).

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(self, model: nn.Module, signed: bool = False) -> None:
        super().__init__(model)
        self.signed = bool(signed)

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        mask = torch.ones(
            (x.shape[0], 1, *x.shape[2:]), dtype=x.dtype, device=x.device, requires_grad=True
        )
        data = x if create_graph else x.detach()
        with torch.enable_grad():
            score = target_score(self.model(mask * data), target)
            (grad,) = torch.autograd.grad(score.sum(), mask, create_graph=create_graph)
        return grad if self.signed else grad.abs()
