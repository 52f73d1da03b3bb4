"""Root-mean-square pooling (o_O nets; Quellec 2017, Table 1).

``y = sqrt(mean_window(x²) + eps)``. The epsilon (1e-12 in the original o_O
code, DESIGN §8) keeps the gradient finite where a window is all zeros, which
double backpropagation (Quellec 2017, eq. 6) would otherwise hit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMSPool2d"]


class RMSPool2d(nn.Module):
    """RMS pooling over ``kernel_size`` windows with ``stride``.

    Shapes: ``(B, C, H, W) -> (B, C, H', W')`` as for ``avg_pool2d``.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2, padding: int = 0, eps: float = 1e-12):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.kernel_size, self.stride, self.padding)
        return torch.sqrt(mean_sq + self.eps)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, eps={self.eps}"
