"""Class activation mapping (Zhou et al. 2016) for global-average-pool + linear heads."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.attribution._utils import (
    capture_output,
    feature_map,
    last_output,
    resolve_module,
    target_weights,
    upsample_map,
)
from wslbench.attribution.base import Attribution, register_attribution
from wslbench.errors import InvalidInputError

__all__ = ["CAM"]


@register_attribution("cam")
class CAM(Attribution):
    """M_c = Σ_k w_{c,k} A_k with ``w`` the weights of the final linear layer.

    The model must be ``... → layer → global average pool → linear``, the
    output being the linear layer's (optionally flattened, e.g. ``(B,)`` for a
    single regression output). The linear bias is not included (it is spatially
    constant). ``target`` picks the row ``c`` of ``w`` exactly as the other
    methods pick an output.

    Args:
        model: maps ``(B, C, *spatial)`` to ``(B,)`` or ``(B, K)``.
        layer: sub-module (or dotted name) whose output ``A`` is average-pooled.
        linear: the final ``nn.Linear`` (or its dotted name).
        relu: apply a ReLU to the map (off by default, as in Zhou et al.).
        upsample: bilinear/trilinear resize to the input size (after the ReLU).

    Shapes:
        ``attribute``: ``(B, C, *spatial) -> (B, 1, *spatial)``
        (``(B, 1, *layer_spatial)`` when ``upsample=False``).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        linear: nn.Module | str,
        relu: bool = False,
        upsample: bool = True,
    ) -> None:
        super().__init__(model)
        self.layer = layer
        self.linear = linear
        self.relu = bool(relu)
        self.upsample = bool(upsample)
        self._module = resolve_module(model, layer)
        self._linear = resolve_module(model, linear, what="linear")
        if not isinstance(self._linear, nn.Linear):
            raise InvalidInputError(
                f"CAM needs the final nn.Linear layer, got {type(self._linear).__name__}"
            )

    def _keeps_input_size(self) -> bool:
        return self.upsample

    def _attribute(
        self, x: torch.Tensor, target: int | torch.Tensor | None, *, create_graph: bool
    ) -> torch.Tensor:
        data = x if create_graph else x.detach()
        grad_mode = torch.enable_grad() if create_graph else torch.no_grad()
        with grad_mode, capture_output(self._module) as store:
            output = self.model(data)
            features = feature_map(last_output(store, self._module), x, self._module)
        weight = self._linear.weight  # (K, F)
        if features.shape[1] != weight.shape[1]:
            raise InvalidInputError(
                f"layer output has {features.shape[1]} channels but the linear layer expects "
                f"{weight.shape[1]} features; CAM needs layer → global average pool → linear"
            )
        onehot = target_weights(output, target).reshape(x.shape[0], -1)
        if onehot.shape[1] != weight.shape[0]:
            raise InvalidInputError(
                f"model output has {onehot.shape[1]} values per sample but the linear layer has "
                f"{weight.shape[0]} outputs; CAM needs the linear layer to be the model's last"
            )
        class_weights = onehot @ (weight if create_graph else weight.detach())  # (B, F)
        shape = (*class_weights.shape, *([1] * (features.ndim - 2)))
        cam = (class_weights.reshape(shape) * features).sum(dim=1, keepdim=True)
        if self.relu:
            cam = torch.relu(cam)
        return upsample_map(cam, tuple(x.shape[2:])) if self.upsample else cam
