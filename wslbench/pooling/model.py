"""A WSL model: backbone → feature map → pooling head (timm's ``forward_features`` split)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.pooling.base import PoolingHead, PoolingOutput

__all__ = ["WSLModel"]


class WSLModel(nn.Module):
    """Any backbone with any pooling head (Rony 2020, 1.3.2.1: "a CNN extracts K feature maps").

    The backbone is called through its ``forward_features(x)`` when it has one
    (e.g. :class:`wslbench.nn.ResNet`), else through ``backbone(x)``; either way
    it must return ``(B, K, h, w)`` with ``K = head.in_channels``. The feature
    map passes through ``feature_tap`` (an ``nn.Identity``), a fixed layer name
    for hooks: ``GradCAM(model, layer="feature_tap")`` works on every backbone.

    Args:
        backbone: an ``nn.Module`` producing the feature map.
        head: a pooling head (see :func:`wslbench.pooling.create_pooling`).

    Shapes:
        ``forward``: ``(B, D, H, W) -> (B, C)`` logits;
        ``cams``: ``(B, D, H, W) -> (B, C, h, w)`` maps at feature resolution;
        ``predict``: both, as ``PoolingOutput(scores, maps)``, from one pass.
    """

    def __init__(self, backbone: nn.Module, head: PoolingHead) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise ConfigError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
        if not isinstance(head, PoolingHead):
            raise ConfigError(
                f"head must be a PoolingHead (see wslbench.pooling.list_pooling()), "
                f"got {type(head).__name__}"
            )
        self.backbone = backbone
        self.head = head
        self.feature_tap = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's feature map ``(B, K, h, w)``."""
        extract = getattr(self.backbone, "forward_features", None)
        features = extract(x) if callable(extract) else self.backbone(x)
        if not isinstance(features, torch.Tensor) or features.ndim != 4:
            got = (
                f"shape {tuple(features.shape)}"
                if isinstance(features, torch.Tensor)
                else type(features).__name__
            )
            raise InvalidInputError(
                f"backbone {type(self.backbone).__name__} must return a feature map "
                f"(B, K, h, w), got {got}"
            )
        return self.feature_tap(features)

    def predict(self, x: torch.Tensor) -> PoolingOutput:
        """``PoolingOutput(scores (B, C), maps (B, C, h, w))`` of ``x`` in one pass."""
        return self.head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class logits ``(B, C)``."""
        return self.predict(x).scores

    def cams(self, x: torch.Tensor) -> torch.Tensor:
        """The head's maps ``(B, C, h, w)`` at feature resolution (CAMs or attention)."""
        return self.predict(x).maps
