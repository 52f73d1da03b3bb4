"""DR screening ConvNets of Quellec et al. 2017: o_O "net A", "net B" and AlexNet.

Quellec, Charrière, Boudi, Cochener, Lamard, "Deep image mining for diabetic
retinopathy screening", Medical Image Analysis 39 (2017).

- :class:`NetA` and :class:`NetB` follow Table 1 (section 5.1.2) layer by
  layer: untied biases on every convolution (:class:`~wslbench.nn.UntiedBiasConv2d`),
  very leaky rectifiers (α = 0.33, section 5.1.3), 3×3/2 MaxPool, a final
  RMSPool (ε = 1e-12 kept inside the square root, DESIGN §8), then
  Dropout → Dense 1024 → Maxout(2) → Dropout → Dense 1024 → Maxout(2) → Dense 1,
  a single linear regression output (the grade-like score, turned into grades
  by :func:`grades_from_score`).
- :class:`AlexNetDR` is the AlexNet variant of 5.1.2 (see its docstring).

Padding. Table 1 gives window sizes, strides and output sizes but not the
padding; the paddings below are the only symmetric ones that reproduce every
output size of the table for a 448 input. Net A: padding 2 for the 5×5/2
first convolution, padding 1 for the 3×3 ones. Net B (4×4 kernels): padding 1
(``out = in/2`` at stride 2, ``out = in − 1`` at stride 1) alternating with
padding 2 (``out = in + 1``), giving the table's 224/225/112/56/57/56/27/28/…
sizes (the o_O configs call padding 1 "same"; a true "same" would give 57 in
row 7, not the table's 56).

Smaller inputs (smoke and demo presets). The network keeps the same layers,
kernel sizes, strides and paddings; only the untied bias maps and the first
dense layer change size. The conv part is a stem (rows 2–3) followed by four
stages (rows 4–7, 8–11, 12–15, 16–18, each starting with a MaxPool). The paper
(5.1.2) says the o_O solution also uses "sub-networks of net A and net B
applied to smaller images (224×224 and 112×112)": as in the o_O configs, a
sub-network drops the deepest stages and puts the RMSPool/dense head after the
last stage kept. With ``stages=None`` (the default) the deepest sub-network
whose shapes are valid is used: all 4 stages at 448 (exactly Table 1); for
net A 3 stages at 224 and 128 and 2 at 112 and 64; for net B 3 stages at 224,
128 and 112 and 2 at 64 (the model's ``stages`` attribute records it). An explicit ``stages`` that does not fit, or an
input too small for even one stage, raises :class:`~wslbench.errors.InvalidInputError`
naming the minimum input size (see :func:`min_input_size`).

Width. ``width`` scales every channel count and the dense sizes (rounded, at
least 1 channel; dense layers keep an even size for Maxout(2)); ``width=1`` is
the paper's network.

Every model keeps its leaf layers in ``self.layers`` (an ``nn.Sequential``
applied in order, for LRP), exposes :meth:`DRNet.forward_features` (the last
convolutional feature map, for Grad-CAM) and :meth:`DRNet.forward_head`, and
returns ``(B,)`` scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import InputShift, Maxout, RMSPool2d, UntiedBiasConv2d, conv_output_size
from wslbench.registry import Registry

__all__ = [
    "DR_NETS",
    "DRNet",
    "NetA",
    "NetB",
    "AlexNetDR",
    "create_dr_net",
    "build_dr_net",
    "list_dr_nets",
    "min_input_size",
    "grades_from_score",
    "dr_weight_decay_params",
    "LEAKY_SLOPE",
    "DR_THRESHOLDS",
]

DR_NETS: Registry[DRNet] = Registry("DR network")

LEAKY_SLOPE = 0.33
"""Very leaky rectifier slope used instead of o_O's 0.01 (Quellec 2017, 5.1.3)."""

DR_THRESHOLDS = (0.5, 1.5, 2.5, 3.5)
"""o_O thresholds turning the regression score into grades 0–4 (DESIGN §8)."""

_MAX_SEARCH = 4096


@dataclass(frozen=True)
class _Op:
    """One table row: ``kind`` in conv / maxpool / rmspool / meanpool."""

    kind: str
    kernel: int
    stride: int
    padding: int = 0
    channels: int = 0  # output channels of a conv (before the width multiplier)


def _conv(channels: int, kernel: int, stride: int, padding: int) -> _Op:
    return _Op("conv", kernel, stride, padding, channels)


_POOL = _Op("maxpool", 3, 2)

# Quellec 2017, Table 1, net A: rows 2-3 (stem), 4-7, 8-11, 12-15, 16-18 (stages), 19 (RMSPool).
_NET_A_STEM = (_conv(32, 5, 2, 2), _conv(32, 3, 1, 1))
_NET_A_STAGES = (
    (_POOL, _conv(64, 3, 2, 1), _conv(64, 3, 1, 1), _conv(64, 3, 1, 1)),
    (_POOL, _conv(128, 3, 1, 1), _conv(128, 3, 1, 1), _conv(128, 3, 1, 1)),
    (_POOL, _conv(256, 3, 1, 1), _conv(256, 3, 1, 1), _conv(256, 3, 1, 1)),
    (_POOL, _conv(512, 3, 1, 1), _conv(512, 3, 1, 1)),
)
_NET_A_RMS = _Op("rmspool", 3, 3)

# Table 1, net B: 4x4 kernels, padding 1 / 2 alternating; row 18 does not exist.
_NET_B_STEM = (_conv(32, 4, 2, 1), _conv(32, 4, 1, 2))
_NET_B_STAGES = (
    (_POOL, _conv(64, 4, 2, 1), _conv(64, 4, 1, 2), _conv(64, 4, 1, 1)),
    (_POOL, _conv(128, 4, 1, 2), _conv(128, 4, 1, 1), _conv(128, 4, 1, 2)),
    (_POOL, _conv(256, 4, 1, 2), _conv(256, 4, 1, 1), _conv(256, 4, 1, 2)),
    (_POOL, _conv(512, 4, 1, 1)),
)
_NET_B_RMS = _Op("rmspool", 3, 2)

# AlexNet (Krizhevsky 2012) on the 2x2/2 mean-pooled input (Quellec 2017, 5.1.2).
_ALEXNET_OPS = (
    _Op("meanpool", 2, 2),
    _conv(96, 11, 4, 2),
    _POOL,
    _conv(256, 5, 1, 2),
    _POOL,
    _conv(384, 3, 1, 1),
    _conv(384, 3, 1, 1),
    _conv(256, 3, 1, 1),
)
_ALEXNET_LAST_POOL = _POOL


def _sizes(ops: Sequence[_Op], size: int) -> list[int]:
    """Output size after each op, or a list ending in a value < 1 when invalid."""
    out = []
    for op in ops:
        size = conv_output_size(size, op.kernel, op.stride, op.padding)
        out.append(size)
        if size < 1:
            break
    return out


def _valid(ops: Sequence[_Op], size: int) -> bool:
    sizes = _sizes(ops, size)
    return len(sizes) == len(ops) and sizes[-1] >= 1


def _oo_ops(name: str, stages: int) -> tuple[_Op, ...]:
    stem, all_stages, rms = (
        (_NET_A_STEM, _NET_A_STAGES, _NET_A_RMS)
        if name == "net_a"
        else (_NET_B_STEM, _NET_B_STAGES, _NET_B_RMS)
    )
    return stem + sum(all_stages[:stages], ()) + (rms,)


def _ops_for(name: str, stages: int | None) -> tuple[_Op, ...]:
    if name == "alexnet":
        return _ALEXNET_OPS + (_ALEXNET_LAST_POOL,)
    return _oo_ops(name, 4 if stages is None else stages)


def min_input_size(name: str, stages: int | None = None) -> int:
    """Smallest square input size giving valid shapes for a DR network.

    Args:
        name: ``"net_a"``, ``"net_b"`` or ``"alexnet"``.
        stages: o_O nets only: number of conv stages kept (1–4, ``None`` = 4,
            the full Table 1 network). AlexNet also needs an even size.

    Returns:
        The minimum input size in pixels.
    """
    name = _check_name(name)
    if name != "alexnet":
        _check_stages(stages)
    ops = _ops_for(name, stages)
    for size in range(1, _MAX_SEARCH):
        if _valid(ops, size) and (name != "alexnet" or size % 2 == 0):
            return size
    raise ConfigError(f"no input size up to {_MAX_SEARCH} fits {name}")  # pragma: no cover


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in ("net_a", "net_b", "alexnet"):
        raise ConfigError(f"unknown DR network {name!r}; expected one of: alexnet, net_a, net_b")
    return name.lower()


def _check_stages(stages: int | None) -> None:
    if stages is not None and (isinstance(stages, bool) or stages not in (1, 2, 3, 4)):
        raise ConfigError(f"stages must be 1, 2, 3, 4 or None (automatic), got {stages!r}")


def _check_common(input_size: int, width: float, in_channels: int, dropout: float) -> None:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise InvalidInputError(f"input_size must be a positive int, got {input_size!r}")
    if not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"width must be a positive finite number, got {width!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be a positive int, got {in_channels!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _dense_units(units: int, width: float) -> int:
    """Dense size scaled by ``width``, kept even for the following Maxout(2)."""
    return 2 * _scaled(units // 2, width)


class DRNet(nn.Module):
    """Common behaviour of the DR networks: a flat stack of leaf layers.

    Attributes:
        layers: ``nn.Sequential`` of leaf modules applied in order; its output is ``(B, 1)``.
        feature_index: ``layers[:feature_index]`` ends at the last conv activation.
        input_size: the square input size the network was built for.
        in_channels: number of input channels.
        width: channel multiplier.

    Shapes:
        ``forward``: ``(B, in_channels, S, S) -> (B,)`` scores;
        ``forward_features``: ``(B, in_channels, S, S) -> (B, K, h, w)``;
        ``forward_head``: ``(B, K, h, w) -> (B,)``.
    """

    name = "dr_net"
    layers: nn.Sequential

    def __init__(self, input_size: int, in_channels: int, width: float) -> None:
        super().__init__()
        self.input_size = input_size
        self.in_channels = in_channels
        self.width = float(width)
        self.feature_index = 0
        # Registered before ``layers``, so it is the first leaf (LRP walks leaves in order).
        self.input_shift = InputShift(0.0)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.input_size, self.input_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"{type(self).__name__} expects (B, {self.in_channels}, {self.input_size}, "
                f"{self.input_size}) images (untied biases fix the size), got {got}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map (after its activation), for Grad-CAM."""
        self._check_input(x)
        return self.layers[: self.feature_index](self.input_shift(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooling and dense layers on :meth:`forward_features` output -> ``(B,)``."""
        return self.layers[self.feature_index :](features).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.layers(self.input_shift(x)).squeeze(-1)

    def _build_head(
        self,
        features: int,
        hidden: Sequence[int],
        dropout: float,
        negative_slope: float,
        maxout: bool,
    ) -> list[nn.Module]:
        """Flatten, then (Dropout, Dense, leaky, [Maxout(2)]) per hidden size, then Dense 1."""
        layers: list[nn.Module] = [nn.Flatten(1)]
        for units in hidden:
            dense = nn.Linear(features, units)
            nn.init.kaiming_uniform_(dense.weight, a=negative_slope)
            nn.init.zeros_(dense.bias)
            layers += [nn.Dropout(dropout), dense, nn.LeakyReLU(negative_slope)]
            features = units
            if maxout:
                layers.append(Maxout(2))
                features = units // 2
        layers.append(nn.Linear(features, 1))
        return layers


class _OONet(DRNet):
    """o_O net A / net B (Quellec 2017, Table 1) — see the module docstring."""

    name = ""

    def __init__(
        self,
        input_size: int = 448,
        width: float = 1.0,
        *,
        in_channels: int = 3,
        dropout: float = 0.5,
        negative_slope: float = LEAKY_SLOPE,
        stages: int | None = None,
        rms_eps: float = 1e-12,
    ) -> None:
        _check_common(input_size, width, in_channels, dropout)
        _check_stages(stages)
        super().__init__(input_size, in_channels, width)
        self.dropout = dropout
        self.negative_slope = negative_slope
        self.rms_eps = rms_eps
        if stages is None:
            fitting = [s for s in (4, 3, 2, 1) if _valid(_oo_ops(self.name, s), input_size)]
            if not fitting:
                raise InvalidInputError(
                    f"{self.name}: input size {input_size} is too small; the smallest "
                    f"sub-network needs >= {min_input_size(self.name, 1)} px and the full "
                    f"Table 1 network >= {min_input_size(self.name, 4)} px (paper: 448)"
                )
            stages = fitting[0]
        elif not _valid(_oo_ops(self.name, stages), input_size):
            raise InvalidInputError(
                f"{self.name} with {stages} stage(s) needs input_size >= "
                f"{min_input_size(self.name, stages)}, got {input_size}"
            )
        self.stages = stages
        ops = _oo_ops(self.name, stages)
        layers: list[nn.Module] = []
        size, channels = input_size, in_channels
        for op in ops:
            if op.kind == "conv":
                out = _scaled(op.channels, width)
                conv = UntiedBiasConv2d(channels, out, op.kernel, size, op.stride, op.padding)
                layers += [conv, nn.LeakyReLU(negative_slope)]
                channels, size = out, conv.output_size
            elif op.kind == "maxpool":
                layers.append(nn.MaxPool2d(op.kernel, op.stride))
                size = conv_output_size(size, op.kernel, op.stride, 0)
            else:  # rmspool: the head starts here
                self.feature_index = len(layers)
                layers.append(RMSPool2d(op.kernel, op.stride, eps=rms_eps))
                size = conv_output_size(size, op.kernel, op.stride, 0)
        self.num_features = channels
        hidden = (_dense_units(1024, width), _dense_units(1024, width))
        layers += self._build_head(channels * size * size, hidden, dropout, negative_slope, True)
        self.layers = nn.Sequential(*layers)


@DR_NETS.register("net_a")
class NetA(_OONet):
    """o_O "net A" (Quellec 2017, Table 1): 5×5/2 then 3×3 untied-bias convolutions.

    Args:
        input_size: square input size (448 in the paper; smaller sizes use the
            sub-network rule of the module docstring).
        width: channel and dense-size multiplier (1.0 = paper).
        in_channels: input channels (3, RGB).
        dropout: dropout probability before each hidden dense layer (0.5, o_O).
        negative_slope: leaky rectifier slope (0.33, section 5.1.3).
        stages: conv stages after the stem (1–4); ``None`` = deepest that fits.
        rms_eps: epsilon inside the RMSPool square root (1e-12, o_O).

    Shapes: ``(B, in_channels, input_size, input_size) -> (B,)``.
    """

    name = "net_a"


@DR_NETS.register("net_b")
class NetB(_OONet):
    """o_O "net B" (Quellec 2017, Table 1): 4×4 untied-bias convolutions, padding 1/2.

    Same arguments as :class:`NetA`. The paper studies this network in most
    detail (5.1.2) and trains it with ν = 1e-3 (Table 2).

    Shapes: ``(B, in_channels, input_size, input_size) -> (B,)``.
    """

    name = "net_b"


@DR_NETS.register("alexnet")
class AlexNetDR(DRNet):
    """AlexNet variant of Quellec 2017 (5.1.2), regression output.

    The paper: "AlexNet processes images of size 224×224 pixels, so images had
    to be downsampled by a factor of 2. Downsampling was done dynamically, using
    a mean pooling operator with a stride of 2 and a window size of 2×2 pixels
    [...], in order to produce heatmaps with 448×448 pixels." What is built,
    layer by layer (sizes for a 448 input):

    ====  =========  ========  =======  ==========
    row   layer      channels  window   output
    ====  =========  ========  =======  ==========
    1     MeanPool   3         2×2 /2   224
    2     Conv       96        11×11/4  55 (pad 2)
    3     MaxPool              3×3 /2   27
    4     Conv       256       5×5 /1   27 (pad 2)
    5     MaxPool              3×3 /2   13
    6–8   Conv ×3    384,384,256  3×3/1  13 (pad 1)
    9     MaxPool              3×3 /2   6
    10–   Dropout, Dense 4096, Dropout, Dense 4096, Dense 1
    ====  =========  ========  =======  ==========

    Choices (the paper names AlexNet only): Krizhevsky et al. 2012 channel
    counts in a single tower (no two-GPU grouping); no local response
    normalisation (Appendix A lists every operator of the evaluated networks
    and LRN is not among them); tied biases (untied biases are stated for the
    o_O nets only); very leaky rectifiers α = 0.33 like the other networks
    (5.1.3); a single linear regression output like net A/B. ``input_size``
    is the size *before* the mean pooling and must be even.

    Args:
        input_size: even square input size (448 in the paper).
        width: channel and dense-size multiplier (1.0 = paper).
        in_channels: input channels.
        dropout: dropout probability before each hidden dense layer.
        negative_slope: leaky rectifier slope.

    Shapes: ``(B, in_channels, input_size, input_size) -> (B,)``.
    """

    name = "alexnet"

    def __init__(
        self,
        input_size: int = 448,
        width: float = 1.0,
        *,
        in_channels: int = 3,
        dropout: float = 0.5,
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        _check_common(input_size, width, in_channels, dropout)
        ops = _ALEXNET_OPS + (_ALEXNET_LAST_POOL,)
        if input_size % 2 or not _valid(ops, input_size):
            raise InvalidInputError(
                f"alexnet needs an even input_size >= {min_input_size('alexnet')} "
                f"(448 in the paper), got {input_size}"
            )
        super().__init__(input_size, in_channels, width)
        self.dropout = dropout
        self.negative_slope = negative_slope
        layers: list[nn.Module] = []
        size, channels = input_size, in_channels
        for op in _ALEXNET_OPS:
            if op.kind == "meanpool":
                layers.append(nn.AvgPool2d(op.kernel, op.stride))
            elif op.kind == "maxpool":
                layers.append(nn.MaxPool2d(op.kernel, op.stride))
            else:
                out = _scaled(op.channels, width)
                conv = nn.Conv2d(channels, out, op.kernel, op.stride, op.padding)
                nn.init.kaiming_uniform_(conv.weight, a=negative_slope)
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.LeakyReLU(negative_slope)]
                channels = out
            size = conv_output_size(size, op.kernel, op.stride, op.padding)
        self.feature_index = len(layers)
        self.num_features = channels
        op = _ALEXNET_LAST_POOL
        layers.append(nn.MaxPool2d(op.kernel, op.stride))
        size = conv_output_size(size, op.kernel, op.stride, 0)
        hidden = (_scaled(4096, width), _scaled(4096, width))
        layers += self._build_head(channels * size * size, hidden, dropout, negative_slope, False)
        self.layers = nn.Sequential(*layers)


def create_dr_net(name: str, **kwargs: object) -> DRNet:
    """Build a registered DR network by name (registry ``create``; see :func:`list_dr_nets`).

    Unknown names and unknown keyword arguments raise :class:`~wslbench.errors.ConfigError`.
    """
    return DR_NETS.create(name, **kwargs)


def build_dr_net(
    name: str,
    *,
    input_size: int = 448,
    width: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.5,
    negative_slope: float = LEAKY_SLOPE,
    stages: int | None = None,
    input_offset: float = 0.0,
) -> DRNet:
    """Typed entry point used by presets: a DR network at a given size and width.

    Args:
        name: ``"net_a"``, ``"net_b"`` or ``"alexnet"``.
        input_size: square input size (448 in the paper).
        width: channel and dense-size multiplier (1.0 = paper).
        in_channels: input channels.
        dropout: dropout probability of the dense head.
        negative_slope: leaky rectifier slope (0.33, Quellec 2017, 5.1.3).
        stages: o_O nets only, see :class:`NetA`; must be ``None`` for AlexNet.
        input_offset: subtracted from the input by the first layer
            (:class:`~wslbench.nn.InputShift`): 0.5 for Graham-preprocessed images, so the
            network sees the zero-centred ``I_n`` of 5.1.1.
    """
    kwargs: dict[str, object] = dict(
        input_size=input_size,
        width=width,
        in_channels=in_channels,
        dropout=dropout,
        negative_slope=negative_slope,
    )
    if stages is not None:
        kwargs["stages"] = stages
    net = create_dr_net(name, **kwargs)
    net.input_shift = InputShift(input_offset)
    return net


def list_dr_nets() -> list[str]:
    """Names of the registered DR networks."""
    return DR_NETS.names()


def grades_from_score(
    score: torch.Tensor, thresholds: Sequence[float] = DR_THRESHOLDS
) -> torch.Tensor:
    """Turn regression scores into integer grades with the o_O thresholds.

    Grade ``g`` is the number of thresholds ``<= score``: with the default
    ``(0.5, 1.5, 2.5, 3.5)``, ``score < 0.5 -> 0``, ``0.5 <= score < 1.5 -> 1``,
    …, ``score >= 3.5 -> 4`` (DESIGN §8). Referable DR is grade ≥ 2
    (Quellec 2017, 5.3.1).

    Args:
        score: ``(B,)`` (any shape) float scores.
        thresholds: strictly increasing thresholds.

    Returns:
        int64 grades with the shape of ``score``.
    """
    if not isinstance(score, torch.Tensor) or not score.is_floating_point():
        raise InvalidInputError(f"score must be a float tensor, got {type(score).__name__}")
    if torch.isnan(score).any():
        raise InvalidInputError("score contains NaN")
    t = [float(v) for v in thresholds]
    if not t or any(b <= a for a, b in zip(t, t[1:])) or not all(map(math.isfinite, t)):
        raise ConfigError(f"thresholds must be finite and strictly increasing, got {thresholds}")
    bounds = torch.tensor(t, dtype=score.dtype, device=score.device)
    return torch.bucketize(score, bounds, right=True)


_DECAYED: tuple[type[nn.Module], ...] = (UntiedBiasConv2d, nn.Conv2d, nn.Linear)


def dr_weight_decay_params(
    model: nn.Module,
    weight_decay: float = 5e-4,
    *,
    decayed: tuple[type[nn.Module], ...] = _DECAYED,
) -> list[dict[str, object]]:
    """Optimizer parameter groups with L2 decay on conv/dense weights only (Quellec 2017, 5.1.3).

    "L2 regularization with factor 0.0005 is applied to filter weights in all
    convolutional and dense layers": the ``weight`` of every
    :class:`~wslbench.nn.UntiedBiasConv2d`, ``nn.Conv2d`` and ``nn.Linear`` gets
    ``weight_decay``; biases (tied or untied) and anything else get 0. With
    ``torch.optim.Adam`` (coupled L2), ``weight_decay = 5e-4`` adds ``5e-4·w`` to
    the gradient, i.e. the loss term ``5e-4 · ½‖w‖²`` — TensorFlow's
    ``tf.nn.l2_loss`` convention, the paper's library (5.2).

    Args:
        model: the network.
        weight_decay: decay of the conv/dense weights.
        decayed: module types whose ``weight`` is decayed.

    Returns:
        ``[{"params": decayed, "weight_decay": wd}, {"params": others, "weight_decay": 0.0}]``
        for ``torch.optim.Adam(groups, lr=1e-4)``.
    """
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay!r}")
    decay_ids: set[int] = set()
    decay: list[nn.Parameter] = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, decayed)
            and isinstance(weight, nn.Parameter)
            and id(weight) not in decay_ids
        ):
            decay_ids.add(id(weight))
            decay.append(weight)
    others = [p for p in model.parameters() if id(p) not in decay_ids]
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": others, "weight_decay": 0.0},
    ]
