"""3D CNN classifying gray-matter maps, AD vs CN (Thibeau-Sutre et al. 2020, section 2.2.2).

Thibeau-Sutre, Colliot, Dormont, Burgos, "Visualization approach to assess the
robustness of neural networks for medical image classification", SPIE Medical
Imaging 2020.

Section 2.2.2: "7 convolutional blocks followed by a dropout layer and a
fully-connected layer. Each convolutional block (C1, C2 or C3) is made of 1 to
3 sub-blocks and a max pooling layer with a kernel size and a stride of 2. Each
sub-block is composed of a convolutional layer with kernel size of 3, a batch
normalization layer and a leaky ReLU activation. The predicted label of the
input image is the class with the highest output probability."

:class:`MRICNN` builds that network for any block configuration (``channels``
and ``convs_per_block``, one entry per block). Choices where the text is silent:

- Convolutions use padding 1 (the spatial size is kept; only the poolings
  reduce it) and PyTorch's default initialisation (2.2.3 says the default
  initialisation was used).
- Max pooling uses ``ceil_mode=True``, so an odd size is rounded up
  (121 → 61 → 31 → 16 → 8 → 4 → 2 → 1): with floor rounding, seven halvings
  of 121 would reach 0. This matches the padded max pooling of the authors'
  ClinicaDL tool up to the padded values (``-inf`` here, so a window that hangs
  over the border takes the max of its voxels inside the volume).
- Leaky ReLU slope 0.01 (PyTorch's default; no value is given).
- The outputs are ``(B, num_classes)`` logits; softmax gives the probabilities.

Paper configuration. The filter and sub-block counts are drawn in the paper's
Figure 1, which is not part of the text this package was written from:
:data:`MRI_CNN_CONFIGS` ``["paper"]`` assumes 8 filters in the first block,
doubling at every block (8 … 512), sub-block counts (1, 1, 2, 2, 3, 3, 3)
(C1, C1, C2, C2, C3, C3, C3), dropout 0.5 and the 121×145×121 grid of the GM
maps (2.3.5). Replace them from the figure if they differ; every count is a
constructor argument. ``"smoke"`` keeps the seven blocks with a few filters
and one sub-block each, for CPU tests.

Layout. ``features`` is an ``nn.Sequential`` of the seven blocks (each an
``nn.Sequential`` of conv/batch-norm/leaky-ReLU sub-blocks then the max pool),
``head`` is Flatten → Dropout → Linear: the forward pass is the composition of
the leaf modules in registration order, as :class:`~wslbench.attribution.LRP`
requires. :meth:`MRICNN.forward_features` is the last block's output (for
Grad-CAM use ``layer="features.6"`` or a sub-layer of it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError

__all__ = [
    "MRI_CNN_CONFIGS",
    "MRICNN",
    "MRICNNConfig",
    "build_mri_cnn",
    "mri_block_shapes",
    "MRI_GRID",
]

MRI_GRID: tuple[int, int, int] = (121, 145, 121)
"""Voxel grid of the gray-matter maps in MNI space (Thibeau-Sutre 2020, 2.3.5)."""


@dataclass(frozen=True)
class MRICNNConfig:
    """Constructor arguments of :class:`MRICNN`, as data (see its Args)."""

    channels: tuple[int, ...]
    convs_per_block: tuple[int, ...]
    dropout: float = 0.5
    num_classes: int = 2
    input_shape: tuple[int, int, int] = MRI_GRID
    in_channels: int = 1
    negative_slope: float = 0.01


MRI_CNN_CONFIGS: dict[str, MRICNNConfig] = {
    "paper": MRICNNConfig(
        channels=(8, 16, 32, 64, 128, 256, 512), convs_per_block=(1, 1, 2, 2, 3, 3, 3)
    ),
    "smoke": MRICNNConfig(channels=(2, 2, 4, 4, 8, 8, 8), convs_per_block=(1,) * 7),
    "demo": MRICNNConfig(channels=(4, 8, 16, 8), convs_per_block=(1,) * 4),
}
"""Named configurations: ``"paper"`` (see the module docstring), ``"smoke"`` (shape tests)
and ``"demo"``: four blocks, used on the 4 mm grid of the ``smoke`` and ``demo`` experiment
presets (45×55×46 → 2×3×2×8; 61×73×61 → 4×5×4×8 at 3 mm), so the linear layer still sees
*where* gray matter is missing. The last block has 8 filters, not 32: the head's
inputs are max-pooled leaky ReLUs, all positive (about 1), and Adam moves every weight by about
``lr`` in the same direction, so one step at lr 1e-3 shifted every AD−CN logit by 5.1 with
4×5×4×32 = 2,560 inputs and by 0.6 with 640 (issue 24, measured on 8 smoke-grid volumes): the
wide head flipped its decision every few steps and the network stayed at chance. Seven blocks on the 3 mm grid end at 1×1×1
(one global max per filter: no location left), and that network stays at chance on the
demo cohort (issue 24: 2.2.2's seven blocks end at 1×2×1 on the paper's 1.5 mm grid
with 512 filters, which the demo cannot afford)."""


def mri_block_shapes(
    input_shape: tuple[int, ...], channels: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """Output ``(C, D, H, W)`` of each block: ``channels[i]`` and the size halved, rounded up."""
    shapes = []
    size = tuple(input_shape)
    for width in channels:
        size = tuple(math.ceil(s / 2) for s in size)
        shapes.append((width, *size))
    return shapes


def _positive_ints(name: str, values: tuple[int, ...]) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(
            f"MRICNN {name} must be a non-empty tuple of positive ints, got {values!r}"
        )
    return values


class MRICNN(nn.Module):
    """Seven (or ``len(channels)``) conv blocks, dropout and one linear layer (section 2.2.2).

    Block ``i`` is ``convs_per_block[i]`` sub-blocks Conv3d(3, padding 1) →
    BatchNorm3d → LeakyReLU, all with ``channels[i]`` filters, then
    MaxPool3d(2, stride 2, ceil_mode). The head flattens the last block's map,
    applies dropout and a linear layer to ``num_classes`` logits.

    Args:
        channels: filters of each block.
        convs_per_block: sub-blocks of each block (same length as ``channels``).
        dropout: dropout probability before the linear layer.
        num_classes: number of outputs (2: AD vs CN).
        input_shape: ``(D, H, W)`` voxel grid the linear layer is sized for.
        in_channels: input channels (1 for gray-matter maps).
        negative_slope: leaky ReLU slope.

    Shapes:
        ``forward``: ``(B, in_channels, D, H, W) -> (B, num_classes)``;
        ``forward_features``: ``-> (B, channels[-1], d, h, w)`` with each size
        halved (rounded up) once per block; ``forward_head``: features ``-> (B, num_classes)``.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        convs_per_block: tuple[int, ...],
        dropout: float = 0.5,
        num_classes: int = 2,
        input_shape: tuple[int, int, int] = MRI_GRID,
        in_channels: int = 1,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        self.channels = _positive_ints("channels", channels)
        self.convs_per_block = _positive_ints("convs_per_block", convs_per_block)
        if len(self.channels) != len(self.convs_per_block):
            raise ConfigError(
                f"MRICNN needs one sub-block count per block: {len(self.channels)} channels "
                f"but {len(self.convs_per_block)} convs_per_block"
            )
        self.input_shape = _positive_ints("input_shape", input_shape)
        if len(self.input_shape) != 3:
            raise ConfigError(f"MRICNN input_shape must be (D, H, W), got {input_shape!r}")
        (self.in_channels,) = _positive_ints("in_channels", (in_channels,))
        (self.num_classes,) = _positive_ints("num_classes", (num_classes,))
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MRICNN dropout must be in [0, 1), got {dropout}")
        if negative_slope < 0:
            raise ConfigError(f"MRICNN negative_slope must be >= 0, got {negative_slope}")
        self.dropout = float(dropout)
        self.negative_slope = float(negative_slope)

        blocks = []
        previous = self.in_channels
        for width, convs in zip(self.channels, self.convs_per_block):
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [
                    nn.Conv3d(previous, width, kernel_size=3, padding=1),
                    nn.BatchNorm3d(width),
                    nn.LeakyReLU(self.negative_slope),
                ]
                previous = width
            layers.append(nn.MaxPool3d(kernel_size=2, stride=2, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*blocks)
        last = mri_block_shapes(self.input_shape, self.channels)[-1]
        self.head = nn.Sequential(
            nn.Flatten(1), nn.Dropout(self.dropout), nn.Linear(math.prod(last), self.num_classes)
        )

    def block_shapes(self) -> list[tuple[int, ...]]:
        """Expected ``(C, D, H, W)`` output of each block for ``input_shape``."""
        return mri_block_shapes(self.input_shape, self.channels)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, *self.input_shape)
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"MRICNN expects (B, {', '.join(map(str, expected))}) volumes (the linear layer "
                f"is sized for input_shape), got {got}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last convolutional block, ``(B, channels[-1], d, h, w)``."""
        self._check_input(x)
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Flatten → dropout → linear on :meth:`forward_features` output -> ``(B, num_classes)``."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_mri_cnn(config: str | MRICNNConfig = "paper", **overrides: object) -> MRICNN:
    """Build :class:`MRICNN` from a named configuration (``"paper"``, ``"smoke"``) or a config.

    ``overrides`` replace fields of the configuration (e.g. ``input_shape=(32, 40, 32)``);
    an unknown field or configuration name raises :class:`~wslbench.errors.ConfigError`.
    """
    if isinstance(config, str):
        if config not in MRI_CNN_CONFIGS:
            raise ConfigError(
                f"unknown MRI CNN configuration {config!r}; expected one of: "
                f"{', '.join(sorted(MRI_CNN_CONFIGS))}"
            )
        config = MRI_CNN_CONFIGS[config]
    if not isinstance(config, MRICNNConfig):
        raise ConfigError(
            f"config must be a configuration name or an MRICNNConfig, got {type(config).__name__}"
        )
    fields = {f.name for f in dataclasses.fields(MRICNNConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"unknown MRICNN field(s) {', '.join(unknown)}; "
            f"expected some of: {', '.join(sorted(fields))}"
        )
    return MRICNN(**dataclasses.asdict(dataclasses.replace(config, **overrides)))
