"""The one interface every WSL pooling head follows (Rony 2020, 1.3.2.1 and 3.2).

A head is an ``nn.Module`` called on backbone features ``F`` of shape
``(B, K, H, W)`` (``K = in_channels``). It returns a :class:`PoolingOutput`, a
named tuple ``(scores, maps)``:

* ``scores`` ``(B, C)``: per-class logits (no sigmoid/softmax), ``C = num_classes``;
* ``maps`` ``(B, C, H, W)``: the class activation maps ``M`` at feature
  resolution (eq. 3.3) for CAM heads, or the attention weights ``A`` per class
  (eq. 1.4) for the Deep MIL heads.

``scores, maps = head(features)`` and ``head(features).scores`` both work.
:meth:`PoolingHead.binarization_threshold` gives the rule that turns ``maps``
into foreground masks for Dice (2.1.2.1): a score above 0 for CAMs (3.4.2),
an attention weight above ``1/(HW)`` for Deep MIL (1.3.4).

Heads are registered by name: ``create_pooling("lse", in_channels=512,
num_classes=2, q=10)``, ``list_pooling()``.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.registry import Registry

__all__ = [
    "POOLING",
    "PoolingHead",
    "PoolingOutput",
    "create_pooling",
    "is_finite_number",
    "linear_maps",
    "list_pooling",
    "register_pooling",
]


class PoolingOutput(NamedTuple):
    """What every pooling head returns.

    Attributes:
        scores: per-class logits ``(B, C)``.
        maps: class activation (or attention) maps ``(B, C, H, W)`` at feature resolution.
    """

    scores: torch.Tensor
    maps: torch.Tensor


POOLING: Registry[PoolingHead] = Registry("pooling head")
register_pooling = POOLING.register


def create_pooling(name: str, **kwargs: object) -> PoolingHead:
    """Build the pooling head registered as ``name`` (e.g. ``in_channels=512, num_classes=2``)."""
    return POOLING.create(name, **kwargs)


def list_pooling() -> list[str]:
    """Names of the registered pooling heads."""
    return POOLING.names()


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int ≥ 1 (bools refused), else a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (bools are not numbers here)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def linear_maps(features: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``M_{c,i,j} = W_c F_{i,j} + b_c`` (eq. 3.3): ``linear`` applied at every position.

    A 1×1 convolution sharing the weights of ``linear`` (3.2: "the fully connected
    layer is replaced by a convolution with a kernel of size 1×1").

    Shapes:
        ``(B, K, H, W) -> (B, C, H, W)`` for ``linear: K -> C``.
    """
    return F.conv2d(features, linear.weight[:, :, None, None], linear.bias)


class PoolingHead(nn.Module):
    """Base class: validates the features, subclasses implement :meth:`_pool`.

    Args:
        in_channels: number of feature channels ``K`` the head accepts.
        num_classes: number of classes ``C`` it scores.

    Attributes:
        attention_maps: class attribute, ``True`` when ``maps`` are attention weights
            summing to 1 over the positions (Deep MIL) rather than class scores.
    """

    attention_maps: ClassVar[bool] = False

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.num_classes = positive_int("num_classes", num_classes)

    def forward(self, features: torch.Tensor) -> PoolingOutput:
        """Pool ``features`` ``(B, K, H, W)`` into ``PoolingOutput(scores (B, C), maps (B, C, H, W))``."""
        self._check_features(features)
        return self._pool(features)

    def binarization_threshold(self, height: int, width: int) -> float:
        """Foreground iff ``maps > threshold`` for maps from an ``height × width`` feature map.

        CAM heads use 0: a pixel whose class score is not above 0 is background
        (zero-score rule, Rony 2020, 3.4.2). Attention heads use ``1/(HW)``, the
        weight of every position under uniform attention: "an instance is
        predicted as belonging to the positive class if its attention weight is
        superior to 1/(HW)" (1.3.4).
        """
        for name, size in (("height", height), ("width", width)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InvalidInputError(f"feature-map {name} must be a positive int, got {size!r}")
        return 1.0 / (height * width) if self.attention_maps else 0.0

    def _check_features(self, features: torch.Tensor) -> None:
        name = type(self).__name__
        if not isinstance(features, torch.Tensor):
            raise InvalidInputError(
                f"{name} expects a features tensor, got {type(features).__name__}"
            )
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"{name} expects features (B, {self.in_channels}, H, W), "
                f"got shape {tuple(features.shape)}"
            )
        if not features.is_floating_point():
            raise InvalidInputError(f"{name} expects floating-point features, got {features.dtype}")

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement _pool")
