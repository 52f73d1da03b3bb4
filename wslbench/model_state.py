"""Leave a model as it was found: train/eval flags and ``requires_grad`` (attribution,
attacks, metrics and training all run a model they do not own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["preserved_model_state"]


@contextlib.contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Restore ``model``'s train/eval flags and parameters' ``requires_grad`` on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)
        for p, flag in flags:
            p.requires_grad_(flag)
