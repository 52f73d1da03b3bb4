"""Semi-supervised DR autoencoder-classifiers AECL1 and AERes18 (Arora et al., 4.2).

Arora, Gaudio, Satpathy, "Semi-supervised learning for Diabetic Retinopathy".

Both models share one layout (Figure 2): an encoder ``E``, a decoder ``D`` and
a classifier ``C``. Unlabelled images go through ``E`` and ``D`` (reconstruction
``x̂``); labelled images also go through ``E`` and ``C`` (one logit ``ŷ``). Every
model exposes the modules ``encoder``, ``decoder``, ``classifier`` and

- :meth:`~SSLAutoencoderClassifier.encode`: ``(B, C, H, W) -> (B, K, H/s, W/s)``,
- :meth:`~SSLAutoencoderClassifier.reconstruct`: ``(B, C, H, W) -> (B, C, H, W)``,
- :meth:`~SSLAutoencoderClassifier.classify`: ``(B, C, H, W) -> (B,)`` logits,
- ``forward(x) -> (reconstruction, logits)`` from a single encoder pass (the
  labelled step of "AE-CL combined" training, 4.3).

The paper's classifiers **CL1** (``E + C`` of AECL1) and **Res18** (``E + C`` of
AERes18) are the same models used through :meth:`classify` only: train
``model.classify`` with an optimizer over ``model.encoder`` and
``model.classifier`` parameters, and the decoder is never evaluated. "AE then CL"
(4.3) trains :meth:`reconstruct` first, then :meth:`classify` on the same model.

Classifier ``C`` (4.2): adaptive average pooling (any input size of similar
scale), then a fully connected layer of 4 units followed by one of 1 unit. The
paper names no activation between the two layers; none is used, so ``C`` is an
affine map of the pooled features whose 4 hidden units are the hook for the
paper's planned multi-label (IDRiD) outputs.

AECL1 (4.2). ``E``: 8 convolutions, each followed by ReLU, max pooling and batch
normalisation (the paper's order); ``D``: 8 transposed convolutions mirroring
them, each except the last followed by ReLU and batch normalisation, the last one
linear (reconstructions of normalised images can be negative). Choices where the
paper is silent: 3×3 kernels with padding 1, channels ``base_width·2^(i//2)``
for encoder layer ``i`` (``w, w, 2w, 2w, 4w, 4w, 8w, 8w``). The paper's text pools
after every one of the 8 layers (``num_pools=8``, total downsampling 256: the
paper's 512 px inputs give a 2×2 code); smaller ``num_pools`` keep the 8 layers and
pool after evenly spaced ones (layers 1, 3, 5, 7 for ``num_pools=4``), for the
smaller inputs of CPU presets. The decoder's counterpart of max pooling is
max-unpooling with the encoder's pooling indices (``upsampling="unpool"``, the
paper's symmetric reading, SegNet style: unpool → transposed conv → ReLU → BN);
``upsampling="stride"`` uses a stride-2 transposed convolution instead (kernel
3, padding 1, output padding 1). ``tie_weights=True`` shares each encoder
convolution's weight tensor with its mirrored transposed convolution (Goodfellow
et al. 2016, cited in 4.2): the same ``nn.Parameter``, so one storage, one
gradient (the sum of both uses) and half the convolution weights; biases (of
different sizes) stay separate.

AERes18 (4.2). ``E`` is :class:`~wslbench.nn.ResNet` 18 without its last layer,
i.e. without the final fully connected (ImageNet) classifier, which ``C``
replaces: the stem and the four residual stages, ``E(x) =
ResNet.forward_features(x)`` of shape ``(B, 8·base_width, H/32, W/32)``. Weights
a user has (e.g. ImageNet ResNet-18 weights converted to this layout) load with
``model.encoder.load_user_weights(path, strict=False)``; nothing is downloaded.
``D``: 9 transposed convolutions, no skip connections, ReLU + BN after each but
the last (linear, for the same reason as AECL1). Layout (paper silent): pairs of
a stride-2 (kernel 4, padding 1) and a stride-1 (kernel 3, padding 1) layer
undo stages 4, 3 and 2 while halving the channels (``8w → 4w → 2w → w``), two
stride-2 layers undo the max pool and the stride-2 stem convolution, and a final
stride-1 layer maps ``w`` channels to the image channels.

Input sizes. Height and width must be multiples of the total downsampling
(``2^num_pools`` for AECL1, 32 for AERes18) so the reconstruction has exactly the
input size; other sizes raise :class:`~wslbench.errors.InvalidInputError`
naming the valid ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.nn import ResNet
from wslbench.registry import Registry
from wslbench.validation import check_int

__all__ = [
    "SSL_MODELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AECL1_UPSAMPLING",
    "SSLAutoencoderClassifier",
    "SSLClassifierHead",
    "AECL1",
    "AERes18",
    "create_ssl_model",
    "list_ssl_models",
]

SSL_MODELS: Registry[SSLAutoencoderClassifier] = Registry("SSL model")

#: ImageNet channel statistics (RGB in [0, 1]) that ImageNet-trained ResNet weights expect.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

AECL1_UPSAMPLING = ("unpool", "stride")
"""Decoder upsampling of AECL1: max-unpooling with the encoder's indices, or stride 2."""

_CL1_LAYERS = 8  # 8 convolutions in E, 8 transposed convolutions in D (4.2)
_CLASSIFIER_HIDDEN = 4  # "a four unit layer followed by a single unit" (4.2)


class SSLClassifierHead(nn.Module):
    """Classifier ``C`` (Arora et al., 4.2): adaptive average pool → FC 4 → FC 1.

    Args:
        in_features: channels ``K`` of the encoder's feature map.

    Shapes:
        ``(B, K, h, w) -> (B,)`` logits.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        check_int("in_features", in_features)
        self.in_features = in_features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(in_features, _CLASSIFIER_HIDDEN)
        self.fc2 = nn.Linear(_CLASSIFIER_HIDDEN, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 4 or features.shape[1] != self.in_features:
            raise InvalidInputError(
                f"classifier expects (B, {self.in_features}, h, w) features, "
                f"got {tuple(features.shape)}"
            )
        return self.fc2(self.fc1(self.pool(features).flatten(1))).squeeze(-1)


class SSLAutoencoderClassifier(nn.Module, ABC):
    """Encoder + decoder + classifier of Arora et al., Figure 2 (see the module docstring).

    Subclasses build ``encoder``, ``decoder`` and ``classifier`` and implement
    ``_encode`` (features and whatever the decoder needs from the encoder, e.g.
    pooling indices) and ``_decode``.

    Attributes:
        in_channels: image channels.
        base_width: width multiplier (channels of the first encoder layer).
        downsampling: total stride of the encoder; H and W must be multiples of it.
        num_features: channels ``K`` of :meth:`encode`'s output.
    """

    encoder: nn.Module
    decoder: nn.Module
    classifier: SSLClassifierHead

    def __init__(self, in_channels: int, base_width: int, downsampling: int) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("base_width", base_width)
        self.in_channels = in_channels
        self.base_width = base_width
        self.downsampling = downsampling

    def _check_input(self, x: torch.Tensor) -> None:
        d = self.downsampling
        ok = (
            isinstance(x, torch.Tensor)
            and x.ndim == 4
            and x.shape[1] == self.in_channels
            and x.shape[2] % d == 0
            and x.shape[3] % d == 0
            and x.shape[2] >= d
            and x.shape[3] >= d
        )
        if not ok:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"{type(self).__name__} expects (B, {self.in_channels}, H, W) images with H and "
                f"W multiples of its total downsampling {d} ({d}, {2 * d}, {3 * d}, {4 * d}, "
                f"...), got {got}"
            )
        if not x.is_floating_point():
            raise InvalidInputError(f"{type(self).__name__} expects float images, got {x.dtype}")

    @abstractmethod
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Encoder features and the per-layer context the decoder uses."""

    @abstractmethod
    def _decode(self, z: torch.Tensor, context: list[torch.Tensor | None]) -> torch.Tensor:
        """Reconstruction from features and the encoder context."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)``: ``(B, C, H, W) -> (B, num_features, H/s, W/s)``."""
        self._check_input(x)
        return self._encode(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``D(E(x)) = x̂``: ``(B, C, H, W) -> (B, C, H, W)``."""
        self._check_input(x)
        return self._decode(*self._encode(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``C(E(x))``: one logit per image, ``(B,)`` (CL1 / Res18 when used alone)."""
        return self.classifier(self.encode(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂, ŷ)``: reconstruction ``(B, C, H, W)`` and logits ``(B,)`` from one ``E`` pass."""
        self._check_input(x)
        z, context = self._encode(x)
        return self._decode(z, context), self.classifier(z)


def _pooled_layers(num_pools: int) -> tuple[bool, ...]:
    """Which of the 8 layers pool: evenly spaced, the last layer always when any pools."""
    n = _CL1_LAYERS
    return tuple((i + 1) * num_pools // n > i * num_pools // n for i in range(n))


class _CL1Encoder(nn.Module):
    """AECL1's ``E``: 8 × (3×3 conv → ReLU → [2×2 max pool] → BN)."""

    def __init__(self, in_channels: int, base_width: int, num_pools: int) -> None:
        super().__init__()
        self.pooled = _pooled_layers(num_pools)
        channels = [in_channels] + [base_width * 2 ** (i // 2) for i in range(_CL1_LAYERS)]
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, 1, 1) for i in range(_CL1_LAYERS)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[1:])
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.num_features = channels[-1]

    def forward_with_indices(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Features and, per layer, the max-pooling indices (``None`` where it does not pool)."""
        indices: list[torch.Tensor | None] = []
        for conv, norm, pooled in zip(self.convs, self.norms, self.pooled):
            x = self.relu(conv(x))
            idx = None
            if pooled:
                x, idx = self.pool(x)
            indices.append(idx)
            x = norm(x)
        return x, indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_indices(x)[0]


class _CL1Decoder(nn.Module):
    """AECL1's ``D``: 8 transposed convs mirroring ``E`` (unpool or stride upsampling)."""

    def __init__(self, encoder: _CL1Encoder, upsampling: str, tie_weights: bool) -> None:
        super().__init__()
        self.upsampling = upsampling
        self.pooled = tuple(reversed(encoder.pooled))  # decoder order
        deconvs = []
        for conv, pooled in zip(reversed(encoder.convs), self.pooled):
            stride = 2 if pooled and upsampling == "stride" else 1
            deconv = nn.ConvTranspose2d(
                conv.out_channels, conv.in_channels, 3, stride, 1, output_padding=stride - 1
            )
            if tie_weights:  # same Parameter: shapes agree, (out, in, 3, 3) of the conv
                deconv.weight = conv.weight
            deconvs.append(deconv)
        self.deconvs = nn.ModuleList(deconvs)
        self.norms = nn.ModuleList(nn.BatchNorm2d(d.out_channels) for d in deconvs[:-1])
        self.relu = nn.ReLU()
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(
        self, z: torch.Tensor, indices: Sequence[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """Reconstruct from ``z``; ``indices`` are the encoder's, in encoder layer order."""
        if self.upsampling == "unpool" and (indices is None or len(indices) != _CL1_LAYERS):
            raise InvalidInputError(
                "the unpool decoder needs the encoder's 8 per-layer pooling indices "
                "(encoder.forward_with_indices); use model.reconstruct(x)"
            )
        x = z
        last = len(self.deconvs) - 1
        for j, (deconv, pooled) in enumerate(zip(self.deconvs, self.pooled)):
            if pooled and self.upsampling == "unpool":
                x = self.unpool(x, indices[last - j])  # type: ignore[index]
            x = deconv(x)
            if j < last:
                x = self.norms[j](self.relu(x))
        return x


@SSL_MODELS.register("aecl1")
class AECL1(SSLAutoencoderClassifier):
    """AECL1: symmetric 8-conv / 8-transposed-conv autoencoder + classifier (Arora et al., 4.2).

    ``CL1`` is this model used through :meth:`classify` (``E + C``).

    Args:
        in_channels: image channels (3 for RGB fundus images).
        base_width: channels of the first encoder layer (doubling every two layers).
        num_pools: number of the 8 layers followed by 2×2 max pooling (8 as in the
            paper's text; fewer for small CPU inputs). Inputs must be multiples of
            ``2**num_pools``.
        upsampling: ``"unpool"`` (max-unpooling with the encoder's indices, the
            paper's symmetric design) or ``"stride"`` (stride-2 transposed convs).
        tie_weights: share each encoder conv weight with its mirrored transposed conv.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_width: int = 32,
        num_pools: int = 8,
        upsampling: str = "unpool",
        tie_weights: bool = False,
    ) -> None:
        if isinstance(num_pools, bool) or not isinstance(num_pools, int):
            raise ConfigError(f"num_pools must be an integer in 0..8, got {num_pools!r}")
        if not 0 <= num_pools <= _CL1_LAYERS:
            raise ConfigError(f"num_pools must be in 0..{_CL1_LAYERS}, got {num_pools}")
        if upsampling not in AECL1_UPSAMPLING:
            raise ConfigError(
                f"unknown upsampling {upsampling!r}; expected one of: {', '.join(AECL1_UPSAMPLING)}"
            )
        if not isinstance(tie_weights, bool):
            raise ConfigError(f"tie_weights must be True or False, got {tie_weights!r}")
        super().__init__(in_channels, base_width, 2**num_pools)
        self.num_pools = num_pools
        self.upsampling = upsampling
        self.tie_weights = tie_weights
        self.encoder = _CL1Encoder(in_channels, base_width, num_pools)
        self.decoder = _CL1Decoder(self.encoder, upsampling, tie_weights)
        self.num_features = self.encoder.num_features
        self.classifier = SSLClassifierHead(self.num_features)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        return self.encoder.forward_with_indices(x)

    def _decode(self, z: torch.Tensor, context: list[torch.Tensor | None]) -> torch.Tensor:
        return self.decoder(z, context)


class _Res18Decoder(nn.Module):
    """AERes18's ``D``: 9 transposed convs, ReLU + BN after all but the last, no skips."""

    def __init__(self, in_features: int, base_width: int, out_channels: int) -> None:
        super().__init__()
        w = base_width
        # (in, out, stride): undo layer4, layer3, layer2 (stride 2 then 1), the max pool,
        # the stride-2 stem conv, then map to image channels.
        plan = [
            (in_features, 4 * w, 2),
            (4 * w, 4 * w, 1),
            (4 * w, 2 * w, 2),
            (2 * w, 2 * w, 1),
            (2 * w, w, 2),
            (w, w, 1),
            (w, w, 2),
            (w, w, 2),
            (w, out_channels, 1),
        ]
        layers: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate(plan):
            kernel = 4 if stride == 2 else 3
            layers.append(nn.ConvTranspose2d(cin, cout, kernel, stride, 1))
            if i < len(plan) - 1:
                layers += [nn.ReLU(), nn.BatchNorm2d(cout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


@SSL_MODELS.register("aeres18")
class AERes18(SSLAutoencoderClassifier):
    """AERes18: ResNet-18 encoder (without its FC) + 9-layer decoder + classifier (4.2).

    ``Res18`` is this model used through :meth:`classify` (``E + C``).

    Args:
        in_channels: image channels.
        base_width: width of the first ResNet stage (64 is the published ResNet-18).
        imagenet_normalize: the encoder sees ``(x − mean) / std`` with the ImageNet
            statistics (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`), what ImageNet
            weights expect (every Res18 number of the paper rests on them, 5.3, Fig. 5);
            inputs and reconstructions stay in [0, 1] image units. RGB only.
    """

    def __init__(self, in_channels: int = 3, base_width: int = 64,
                 imagenet_normalize: bool = False) -> None:
        super().__init__(in_channels, base_width, 32)
        if imagenet_normalize and in_channels != 3:
            raise ConfigError(f"imagenet_normalize needs RGB images (in_channels=3), got {in_channels}")
        self.imagenet_normalize = imagenet_normalize
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = ResNet(
            depth=18, in_channels=in_channels, num_classes=None, base_width=base_width
        )
        self.num_features = self.encoder.num_features
        self.decoder = _Res18Decoder(self.num_features, base_width, in_channels)
        self.classifier = SSLClassifierHead(self.num_features)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        if self.imagenet_normalize:
            x = (x - self._mean) / self._std
        return self.encoder.forward_features(x), []

    def _decode(self, z: torch.Tensor, context: list[torch.Tensor | None]) -> torch.Tensor:
        return self.decoder(z)


def create_ssl_model(name: str, **kwargs: object) -> SSLAutoencoderClassifier:
    """Build a registered SSL model by name (see :func:`list_ssl_models`).

    Unknown names and unknown keyword arguments raise :class:`~wslbench.errors.ConfigError`.
    """
    return SSL_MODELS.create(name, **kwargs)


def list_ssl_models() -> list[str]:
    """Names of the registered SSL models (``aecl1``, ``aeres18``)."""
    return SSL_MODELS.names()
