"""Multi-class attention pooling with score dropout, the thesis' proposal (Rony 2020, 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.pooling.base import (
    PoolingHead,
    PoolingOutput,
    is_finite_number,
    linear_maps,
    register_pooling,
)

__all__ = ["MultiClassAttentionPooling", "draw_score_dropout", "mc_attention_pool"]


def draw_score_dropout(
    shape: tuple[int, ...],
    fraction: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random draw of the instance scores to zero: a bool tensor, ``True`` with probability ``fraction``.

    Each (sample, class, position) is dropped independently (Rony 2020, 3.3,
    "we randomly set a fraction d of the instance scores to 0"; 3.4.2 calls
    ``d`` a probability). Apply it with :func:`mc_attention_pool`.
    """
    if not is_finite_number(fraction) or not 0 <= fraction <= 1:
        raise InvalidInputError(f"score dropout fraction must be in [0, 1], got {fraction!r}")
    uniform = torch.rand(shape, generator=generator, device=device)
    return uniform < fraction


def mc_attention_pool(maps: torch.Tensor, dropped: torch.Tensor | None = None) -> torch.Tensor:
    """``s_c = Σ_{i,j} A_{c,i,j} M_{c,i,j}``, ``A_c = softmax_{i,j}(M_c)`` (eq. 3.10–3.11).

    With a linear classifier φ this equals ``φ(F'_c)_c`` for ``F'_c = Σ A_{c,i,j}
    F_{i,j}`` (eq. 3.11, tested). ``dropped`` (bool, ``maps``' shape) sets those
    instance scores to 0 *inside the softmax only*, before the normalisation;
    the weighted average is over the true scores ``M``. Dropping everything
    gives uniform weights ``1/(HW)``, i.e. average pooling (3.4.4).

    Args:
        maps: ``(B, C, H, W)`` class activation maps ``M``.
        dropped: optional bool mask of the same shape (see :func:`draw_score_dropout`).

    Returns:
        ``(B, C)`` scores.
    """
    logits = maps
    if dropped is not None:
        if dropped.shape != maps.shape or dropped.dtype != torch.bool:
            raise InvalidInputError(
                f"dropped must be a bool tensor of shape {tuple(maps.shape)}, got "
                f"{dropped.dtype} {tuple(dropped.shape)}"
            )
        logits = maps.masked_fill(dropped, 0.0)
    weights = F.softmax(logits.flatten(2), dim=2)
    return (weights * maps.flatten(2)).sum(dim=2)


@register_pooling("mcattention")
class MultiClassAttentionPooling(PoolingHead):
    """CAMs ``M = φ(F)`` weight their own average: one attention map per class (Rony 2020, 3.3).

    ``φ`` is a linear layer (``self.classifier``) applied at every position;
    ``A_c`` is the softmax of ``M_c`` over the positions and ``s_c = Σ A_c M_c``
    (:func:`mc_attention_pool`, eq. 3.10–3.11). In training mode a random
    fraction ``dropout`` of the instance scores is set to 0 before the softmax
    (3.3, regularisation); in eval mode, or with ``dropout=0``, the head is
    deterministic. The random draw uses torch's global generator, like
    ``nn.Dropout``. ``maps`` are the CAMs ``M`` (not ``A``): the zero-score
    background rule of 3.4.2 applies to them.

    Args:
        in_channels: feature channels ``K``.
        num_classes: classes ``C``.
        dropout: fraction ``d ∈ [0, 1]`` of instance scores zeroed in training;
            0.3 as in 3.4.2 (3.4.4 then uses 0.4; the histology tables 0.03 and 0.1).

    Shapes:
        ``(B, K, H, W) -> PoolingOutput(scores (B, C), maps (B, C, H, W))``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.3) -> None:
        super().__init__(in_channels, num_classes)
        if not is_finite_number(dropout) or not 0 <= dropout <= 1:
            raise ConfigError(f"mcattention dropout must be in [0, 1], got {dropout!r}")
        self.dropout = dropout
        self.classifier = nn.Linear(self.in_channels, self.num_classes)

    def _pool(self, features: torch.Tensor) -> PoolingOutput:
        maps = linear_maps(features, self.classifier)
        dropped = None
        if self.training and self.dropout > 0:
            dropped = draw_score_dropout(tuple(maps.shape), self.dropout, device=maps.device)
        return PoolingOutput(mc_attention_pool(maps, dropped), maps)
