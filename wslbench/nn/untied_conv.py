"""Convolution with untied biases (one bias per output unit, not per channel).

Used by the o_O "net A"/"net B" DR networks (Quellec 2017, Table 1; DESIGN §8):
the bias is a full ``(C_out, H_out, W_out)`` tensor, so the input size of the
layer is fixed when the layer is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.errors import InvalidInputError

__all__ = ["UntiedBiasConv2d", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output size of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


class UntiedBiasConv2d(nn.Module):
    """2D convolution without a shared bias plus an untied bias map.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        input_size: the (square) spatial size this layer will be applied to.
        stride: stride.
        padding: zero padding on each side.

    Shapes:
        ``(B, in_channels, input_size, input_size) -> (B, out_channels, S, S)``
        with ``S = conv_output_size(input_size, kernel_size, stride, padding)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        input_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.input_size = input_size
        self.stride = stride
        self.padding = padding
        self.output_size = conv_output_size(input_size, kernel_size, stride, padding)
        if self.output_size < 1:
            raise InvalidInputError(
                f"UntiedBiasConv2d: input size {input_size} too small for kernel {kernel_size}"
            )
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.output_size, self.output_size))
        nn.init.kaiming_uniform_(self.weight, a=0.33)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise InvalidInputError(
                f"UntiedBiasConv2d built for {self.input_size}x{self.input_size} inputs, "
                f"got {tuple(x.shape[-2:])}"
            )
        y = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return y + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, input_size={self.input_size}"
        )
