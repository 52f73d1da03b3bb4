"""The CNNCS training loss (Xue et al., eq. 3 and 4.1).

``loss = ½‖x̂ − x‖² + α‖â − a‖₁``: the dense code (with the β·count entry of
the multi-task label, 4.1) is regressed by L2 and the recovered sparse code is
compared with the true one by L1. Both norms are summed over the code entries
and averaged over the batch. ``α = 0`` (or no ``â``) is the L2-only loss of the
non-end-to-end CNNCS.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wslbench.errors import InvalidInputError

__all__ = ["cnncs_loss"]


def cnncs_loss(
    code_pred: torch.Tensor,
    code_true: torch.Tensor,
    sparse_pred: torch.Tensor | None = None,
    sparse_true: torch.Tensor | None = None,
    *,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Eq. 3 of Xue et al., averaged over the batch.

    Args:
        code_pred: predicted label x̂ ``(B, L·m + 1)`` (dense codes and β·count).
        code_true: encoded ground truth ``(B, L·m + 1)``.
        sparse_pred: recovered sparse codes â ``(B, L, n)``; needed when ``alpha > 0``.
        sparse_true: true sparse codes a ``(B, L, n)``.
        alpha: weight α of the L1 term (1.3 in 4.3; 0 for CNNCS).
    """
    for name, value in (("code_pred", code_pred), ("code_true", code_true),
                        ("sparse_pred", sparse_pred), ("sparse_true", sparse_true)):
        if value is not None and not isinstance(value, torch.Tensor):
            raise InvalidInputError(f"{name} must be a torch tensor, got {type(value).__name__}")
    if code_pred.shape != code_true.shape or code_pred.ndim != 2:
        raise InvalidInputError(
            f"codes must both be (B, L*m + 1), got {tuple(code_pred.shape)} and {tuple(code_true.shape)}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.number) \
            or not math.isfinite(alpha) \
            or alpha < 0:
        raise InvalidInputError(f"alpha must be a finite number >= 0, got {alpha!r}")
    loss = 0.5 * (code_pred - code_true).pow(2).sum(1).mean()
    if alpha == 0:
        return loss
    if sparse_pred is None or sparse_true is None:
        raise InvalidInputError("alpha > 0 needs the recovered and the true sparse codes")
    if sparse_pred.shape != sparse_true.shape or sparse_pred.shape[0] != code_pred.shape[0]:
        raise InvalidInputError(
            f"sparse codes must both be (B, L, n) with B = {code_pred.shape[0]}, got "
            f"{tuple(sparse_pred.shape)} and {tuple(sparse_true.shape)}"
        )
    return loss + alpha * (sparse_pred - sparse_true).abs().flatten(1).sum(1).mean()
