"""U-Net (Ronneberger, Fischer & Brox 2015) in plain torch, the fully supervised upper bound.

Rony 2020, 2.1.2.1 ("Evaluation B") and 2.1.3.2: a U-Net trained on pixel-level
masks only gives the upper bound of pixel-wise localisation that the weakly
supervised models are compared with (Tables 2.7 and 2.9).

Architecture (Ronneberger 2015, section 2, Fig. 1): a contracting path of
``depth`` steps, each a double 3×3 convolution followed by 2×2 max pooling that
doubles the channel count, a bottleneck double convolution, and an expanding
path that upsamples by 2, halves the channels, concatenates the skip connection
of the same resolution and applies a double 3×3 convolution; a final 1×1
convolution maps to ``num_classes`` logits.

Choices where the papers are silent or where we deviate on purpose:

* Convolutions are padded ("same"), so the output has the input size and no
  cropping of skip connections is needed (the 2015 paper uses unpadded
  convolutions and a smaller output). Hence H and W must be divisible by
  ``2 ** depth``; anything else raises :class:`~wslbench.errors.InvalidInputError`.
* ``batch_norm=True`` (default) puts a batch norm after every 3×3 convolution
  (not in the 2015 paper; the authors' public release of the thesis experiments,
  ``jeromerony/survey_wsl_histology``, uses it). Without it, convolutions carry a bias.
* ``upsampling="transpose"`` is the 2015 "up-convolution" (2×2 transposed
  convolution, stride 2, halving channels); ``"bilinear"`` is bilinear
  interpolation (``align_corners=False``) followed by a 1×1 convolution that
  halves the channels, so both variants have the same channel layout.
* ``depth=4`` and ``base_width=64`` reproduce the 2015 widths 64…1024; smaller
  values give CPU smoke models. The 2015 dropout at the end of the contracting
  path is not included (the thesis does not mention it).
"""

from __future__ import annotations

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError

__all__ = ["UNet", "UNET_UPSAMPLING"]

UNET_UPSAMPLING = ("transpose", "bilinear")


def _double_conv(in_ch: int, out_ch: int, batch_norm: bool) -> nn.Sequential:
    """Two 3×3 "same" convolutions, each followed by (batch norm and) ReLU."""
    layers: list[nn.Module] = []
    for c_in in (in_ch, out_ch):
        layers.append(nn.Conv2d(c_in, out_ch, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


def _upsample(in_ch: int, out_ch: int, mode: str) -> nn.Module:
    """×2 upsampling from ``in_ch`` to ``out_ch`` channels."""
    if mode == "transpose":
        return nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_ch, out_ch, 1),
    )


class UNet(nn.Module):
    """U-Net returning per-pixel logits at the input resolution.

    Ronneberger et al. 2015, section 2 and Fig. 1; used as the fully supervised
    reference of Rony 2020, 2.1.3.2.

    Args:
        in_channels: channels of the input image (3 for RGB histology).
        num_classes: number of output logit maps (2 for background/foreground).
        depth: number of 2×2 poolings (4 in the 2015 paper); inputs must have H and
            W divisible by ``2 ** depth``.
        base_width: channels of the first level (64 in the 2015 paper); level ``i``
            has ``base_width * 2 ** i`` channels.
        batch_norm: batch norm after every 3×3 convolution.
        upsampling: ``"transpose"`` (2×2 up-convolution) or ``"bilinear"``
            (interpolation + 1×1 convolution).

    Shapes:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)`` logits.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        depth: int = 4,
        base_width: int = 64,
        batch_norm: bool = True,
        upsampling: str = "transpose",
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("depth", depth),
            ("base_width", base_width),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"UNet {name} must be a positive integer, got {value!r}")
        if upsampling not in UNET_UPSAMPLING:
            raise ConfigError(
                f"UNet upsampling {upsampling!r} unknown; expected one of {list(UNET_UPSAMPLING)}"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = depth
        self.base_width = base_width
        self.batch_norm = batch_norm
        self.upsampling = upsampling

        widths = [base_width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList()
        c_in = in_channels
        for w in widths[:-1]:
            self.encoder.append(_double_conv(c_in, w, batch_norm))
            c_in = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1], batch_norm)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w_low, w in zip(reversed(widths[1:]), reversed(widths[:-1])):
            self.up.append(_upsample(w_low, w, upsampling))
            self.decoder.append(_double_conv(2 * w, w, batch_norm))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(f"UNet expects a (B, C, H, W) tensor, got {shape}")
        if x.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"UNet was built for {self.in_channels} input channels, got {x.shape[1]}"
            )
        factor = 2**self.depth
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise InvalidInputError(
                f"UNet of depth {self.depth} needs H and W divisible by 2**{self.depth} = "
                f"{factor}, got {h}×{w}; pad or crop the input (e.g. to "
                f"{-(-h // factor) * factor}×{-(-w // factor) * factor})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(B, num_classes, H, W)`` for ``x`` of shape ``(B, C, H, W)``."""
        self._check_input(x)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)
