"""Sensitivity criterion ω (Quellec et al. 2017, section 3.2, eq. 2; Simonyan et al. 2014)."""

from __future__ import annotations

import math

import torch
from torch import nn

from wslbench.attribution._utils import input_leaf, target_score
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.errors import ConfigError

__all__ = ["Sensitivity"]

_VALID_Q = (1.0, 2.0, math.inf)


@register_attribution("sensitivity")
class Sensitivity(Attribution):
    """ω_{n,x,y} = ‖(∂f_n(D)/∂D_{n,x,y,c})_c‖_q, the q-norm over colour channels (eq. 2).

    For a single-channel input (3D MRI volumes, grey images) every q gives
    ``|∂f/∂x|``. The gradient is taken with :func:`torch.autograd.grad`, so
    neither ``x.grad`` nor the parameters' ``.grad`` are touched. The model is
    used in its current train/eval mode (call ``model.eval()`` for inference maps).

    Args:
        model: maps ``(B, C, H, W)`` or ``(B, C, D, H, W)`` to ``(B,)`` or ``(B, K)``.
        q: 1, 2 or ``inf`` (also the string ``"inf"``); ``inf`` is Simonyan et al.'s
            choice (the paper's footnote to eq. 2) and the default.

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``.
    """

    def __init__(self, model: nn.Module, q: float | int | str = math.inf) -> None:
        super().__init__(model)
        value = math.inf if isinstance(q, str) and q.lower() == "inf" else q
        if isinstance(value, str) or isinstance(value, bool) or float(value) not in _VALID_Q:
            raise ConfigError(f"Sensitivity q must be 1, 2 or inf, got {q!r}")
        self.q = float(value)

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        with torch.enable_grad():
            leaf = input_leaf(x, create_graph)
            score = target_score(self.model(leaf), target)
            (grad,) = torch.autograd.grad(score.sum(), leaf, create_graph=create_graph)
        if self.q == 1.0:
            return grad.abs().sum(dim=1, keepdim=True)
        if self.q == math.inf:
            return grad.abs().amax(dim=1, keepdim=True)
        return torch.linalg.vector_norm(grad, ord=2, dim=1, keepdim=True)
