"""Grad-CAM (Selvaraju et al. 2017) in 2D and 3D."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.attribution._utils import (
    capture_output,
    feature_map,
    last_output,
    resolve_module,
    target_score,
    upsample_map,
)
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.errors import InvalidInputError

__all__ = ["GradCAM"]


@register_attribution("grad-cam")
class GradCAM(Attribution):
    """L = ReLU(Σ_k α_k A_k), α_k = mean over every spatial axis of ∂f/∂A_k.

    ``A`` is the output of ``layer``, ``(B, K, h, w)`` or ``(B, K, d, h, w)``.
    In 3D the gradient is averaged over all three spatial axes (DESIGN §8: a
    known bug elsewhere averages only two). The activation is captured by a
    forward hook registered inside a context manager and removed on exit,
    exceptions included.

    For a model ending in global average pooling + linear, Grad-CAM equals
    ReLU(CAM) / (number of feature-map positions) (tested).

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)`` or ``(B, K)``.
        layer: the sub-module (or its dotted name, e.g. ``"features.3"``) whose
            output is the feature map.
        upsample: resize the map to the input size, bilinear (2D) or trilinear
            (3D), after the ReLU; ``False`` returns it at the layer's resolution.

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``
        (``(B, 1, *layer_spatial)`` when ``upsample=False``).
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str, upsample: bool = True) -> None:
        super().__init__(model)
        self.layer = layer
        self.upsample = bool(upsample)
        self._module = resolve_module(model, layer)

    def _keeps_input_size(self) -> bool:
        return self.upsample

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        # a grad-requiring input keeps the features differentiable when every parameter is frozen
        data = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        with torch.enable_grad(), capture_output(self._module) as store:
            output = self.model(data)
            features = feature_map(last_output(store, self._module), x, self._module)
            if not features.requires_grad:
                raise InvalidInputError(
                    f"layer {type(self._module).__name__}'s output does not require grad; "
                    "Grad-CAM needs the score to depend on it"
                )
            score = target_score(output, target)
            (grad,) = torch.autograd.grad(score.sum(), features, create_graph=create_graph)
        spatial = tuple(range(2, features.ndim))
        alpha = grad.mean(dim=spatial, keepdim=True)
        cam = torch.relu((alpha * features).sum(dim=1, keepdim=True))
        return upsample_map(cam, tuple(x.shape[2:])) if self.upsample else cam
