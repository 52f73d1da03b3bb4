"""A constant shift of the input: the network sees ``x − offset``."""

from __future__ import annotations

import math

import torch
from torch import nn

from wslbench.errors import ConfigError

__all__ = ["InputShift"]


class InputShift(nn.Module):
    """``x ↦ x − offset`` with a fixed scalar ``offset`` (no parameter, not in the state dict).

    Quellec et al. (2017, 5.1.1) feed the network the zero-centred ``I_n = 4 (I_r − I_b)``;
    Graham-preprocessed tensors carry a display offset of 0.5 (so they can be shown and
    stay in [0, 1] for attacks), and this first layer removes it. LRP passes relevance
    through it unchanged, so every map is a map of ``I_n``.

    Args:
        offset: the value subtracted (0: identity).
    """

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
            raise ConfigError(f"offset must be a finite number, got {offset!r}")
        self.register_buffer("offset", torch.tensor(float(offset)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.offset

    def extra_repr(self) -> str:
        return f"offset={float(self.offset):g}"
