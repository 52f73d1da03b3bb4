"""ResNet-18/34/50/101/152 in plain torch (He et al. 2016), no downloaded weights.

Shared backbone of the histology WSL models (Rony 2020, 4.4.2), the SSL DR
autoencoder AERes18 (Arora et al., 4.2) and the CNNCS code regressor (Xue et
al., 4.3). The backbone/head split follows timm: :meth:`ResNet.forward_features`
returns the last feature map ``(B, K, H/s, W/s)``; :meth:`ResNet.forward_head`
pools it and applies the optional classifier.

``output_stride`` 32 is the classic network; 16 (or 8) sets the stride of the
first convolution of the last (two) stage(s) to 1, the "stride 16" variant of
Rony 2020, 4.4.2. ``base_width`` scales every stage (64 is the published width)
so smoke presets run in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet", "RESNET_LAYERS"]

RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 bottleneck with a residual connection (ResNet-50+)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """ResNet backbone with an optional classification head.

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: input channels (3 for RGB).
        num_classes: size of the linear classifier; ``None`` for a backbone only.
        output_stride: total stride of :meth:`forward_features`: 32, 16 or 8.
        base_width: width of the first stage (64 in the paper networks).

    Shapes:
        ``forward_features``: ``(B, in_channels, H, W) -> (B, num_features, H/s, W/s)``;
        ``forward``: ``(B, num_classes)`` (or pooled features when no classifier).
    """

    def __init__(
        self,
        depth: int = 18,
        in_channels: int = 3,
        num_classes: int | None = None,
        output_stride: int = 32,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ConfigError(f"ResNet depth {depth} unknown; expected one of {sorted(RESNET_LAYERS)}")
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if base_width < 1:
            raise ConfigError(f"base_width must be positive, got {base_width}")
        self.depth = depth
        self.output_stride = output_stride
        kind, counts = RESNET_LAYERS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2, 1),
        )
        strides = [1, 2, 2, 2]
        if output_stride <= 16:
            strides[3] = 1
        if output_stride == 8:
            strides[2] = 1
        stages = []
        in_ch = base_width
        for i, (n, stride) in enumerate(zip(counts, strides)):
            width = base_width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, width, stride if j == 0 else 1))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_ch
        self.classifier = nn.Linear(in_ch, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise InvalidInputError(f"ResNet expects (B, C, H, W), got shape {tuple(x.shape)}")
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return self.classifier(pooled) if self.classifier is not None else pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def load_user_weights(self, path: str | Path, strict: bool = True) -> None:
        """Load a user-supplied state dict file (``torch.load(weights_only=True)``)."""
        from wslbench.checkpoint import load_state_dict
        from wslbench.errors import DataFormatError

        try:
            self.load_state_dict(load_state_dict(path), strict=strict)
        except RuntimeError as exc:  # missing / unexpected keys, wrong shapes
            raise DataFormatError(
                f"{path} does not hold weights of this ResNet-{self.depth} "
                f"(base width {self.stem[0].out_channels}): {str(exc).splitlines()[0]}; expected a "
                "state dict saved from the same architecture"
            ) from exc


def resnet(depth: int = 18, **kwargs: int | None) -> ResNet:
    """Build a ResNet of the given depth (see :class:`ResNet` for the arguments)."""
    return ResNet(depth=depth, **kwargs)  # type: ignore[arg-type]
