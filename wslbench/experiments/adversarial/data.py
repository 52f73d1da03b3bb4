"""The images an attack is run on: correctly classified test images (Rony 2020, A V)."""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import InvalidInputError

__all__ = ["correctly_classified"]


@torch.no_grad()
def correctly_classified(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images the model classifies correctly (attacks start from correct ones)."""
    was_training = model.training
    model.eval()
    try:
        keep = model(x).argmax(1) == y
    finally:
        model.train(was_training)
    if not keep.any():
        raise InvalidInputError("the model classifies none of the images correctly; nothing to attack")
    idx = torch.nonzero(keep)[:n, 0]
    return x[idx], y[idx]
