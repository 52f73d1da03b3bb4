"""Maxout units (Goodfellow et al. 2013), used after the dense layers of the o_O nets."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import InvalidInputError

__all__ = ["Maxout"]


class Maxout(nn.Module):
    """Max over groups of ``pool_size`` consecutive features.

    Shapes: ``(B, F) -> (B, F // pool_size)``.
    """

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.pool_size:
            raise InvalidInputError(
                f"Maxout({self.pool_size}) needs a feature count divisible by "
                f"{self.pool_size}, got {x.shape[-1]}"
            )
        return x.unflatten(-1, (x.shape[-1] // self.pool_size, self.pool_size)).amax(-1)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}"
