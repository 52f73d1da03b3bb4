"""Hue-constrained sensitivity criterion π (Quellec et al. 2017, section 3.5, eq. 3)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.attribution._utils import target_score
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.validation import check_reference

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

    The paper's ``D`` is the zero-centred preprocessed image
    ``I_n = 4 (I_r − I_b)`` (section 5.1.1), so ``m ∘ D`` scales a pixel's
    *contrast* to its background, and a dark and a bright lesion of the same
    contrast weigh the same. When the network is fed an offset copy
    ``x = D + reference`` (Graham's +128, i.e. 0.5 in [0, 1] units), the mask
    must act on ``x − reference``: the model sees ``reference + m ∘ (x − reference)``
    and π = |Σ_c (x_c − reference) ∂f/∂x_c|. With the default ``reference = 0``
    the mask multiplies ``x`` itself; on an offset image that would scale
    brightness instead of contrast and shrink π on dark (red) lesions.

    With ``create_graph=True`` the map is differentiable with respect to the
    model's parameters (double backpropagation), as the sparsity-enhanced
    training of eq. 6 needs (the L1 norm of π is added to the loss; m plays
    the role of the input, section 4.2). With piecewise-linear layers (leaky
    ReLU, max pooling) the map's derivative w.r.t. the weights exists almost
    everywhere but the second derivative of f is zero between kinks.

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)`` or ``(B, K)``.
        signed: return ∂f/∂m itself (no absolute value): positive where
            raising the pixel's contrast raises the score. Default ``False`` (eq. 3).
        reference: the input value that encodes zero of the paper's ``D``
            (0 for zero-centred inputs; 0.5 for :func:`~wslbench.data.preprocess_fundus`
            output, whose offset is for display only).

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(self, model: nn.Module, signed: bool = False, reference: float = 0.0) -> None:
        super().__init__(model)
        self.signed = bool(signed)
        self.reference = check_reference(reference)

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        mask = torch.ones(
            (x.shape[0], 1, *x.shape[2:]), dtype=x.dtype, device=x.device, requires_grad=True
        )
        data = x if create_graph else x.detach()
        with torch.enable_grad():
            if self.reference == 0.0:
                masked = mask * data
            else:
                masked = self.reference + mask * (data - self.reference)
            score = target_score(self.model(masked), target)
            (grad,) = torch.autograd.grad(score.sum(), mask, create_graph=create_graph)
        return grad if self.signed else grad.abs()
