"""Density-map regression baseline (FCRN-A, Xie, Noble & Zisserman 2016) for cell detection.

Xue et al. (CNNCS) compare their compressed-sensing detector with density-map
methods; this module gives wslbench that comparison. Xie et al. 2016 ("Microscopy
cell counting and detection with fully convolutional regression networks")
regress a density map whose integral over a region is the number of cells in it:

* **Target** (:func:`density_target`): each annotated centroid becomes a dot of
  mass ``dot_value = 100`` smoothed by a Gaussian of ``σ = 1`` pixel (the
  scaling by 100 keeps the regression targets away from zero); the count is
  ``sum / 100`` (:func:`count_from_density`).
* **Network** (:class:`DensityNet`): FCRN-A, a fully convolutional
  encoder–decoder: ``depth`` blocks of 3×3 convolution + ReLU + 2×2 max
  pooling (32, 64, 128 channels), a 3×3 convolution standing in for the fully
  connected layer (512), then ``depth`` blocks of ×2 bilinear upsampling + 3×3
  convolution + ReLU (128, 64, 32) and a 1×1 linear output.
* **Training** (:func:`train_density_net`): mean squared error between predicted
  and target maps.
* **Detection** (:func:`detect_peaks`): cells are the local maxima of the
  predicted map above a threshold, which can then be scored with
  :func:`~wslbench.metrics.detection.compute_detection_scores` (Xue et al., 4.2).

Choices where the sources are silent or where we deviate on purpose:

* A Gaussian that would spill over the image border is renormalised to the part
  inside the image (truncated at 4σ, like :func:`scipy.ndimage.gaussian_filter`),
  so every cell contributes exactly ``dot_value`` and border cells are counted in
  full (their peak is correspondingly higher: up to 4× in a corner). Centroids may be sub-pixel; the Gaussian is centred on the exact position
  (pixel ``(i, j)`` has its centre at coordinates ``(i, j)``).
* ``batch_norm=True`` (default) adds batch normalisation after every hidden
  convolution, as in the authors' public re-release (``WeidiXie/cell_counting_v2``);
  the 2016 paper has none.
* H and W must be divisible by ``2 ** depth`` (8 for FCRN-A); pad the image
  otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics.froc import extract_candidates
from wslbench.validation import check_number

__all__ = [
    "DensityNet",
    "count_from_density",
    "density_target",
    "detect_peaks",
]

_TRUNCATE = 4.0  # Gaussian support in σ, as scipy.ndimage.gaussian_filter


def _centroids(centroids: object, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(centroids, torch.Tensor):
        centroids = centroids.detach().cpu().numpy()
    try:
        c = np.asarray(centroids, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"centroids must be a numeric (n, 2) array, got {type(centroids).__name__}"
        ) from exc
    if c.size == 0:
        return np.zeros((0, 2))
    if c.ndim != 2 or c.shape[1] != 2:
        raise InvalidInputError(f"centroids must have shape (n, 2) of (row, col), got {c.shape}")
    if not np.isfinite(c).all():
        raise InvalidInputError("centroids contain NaN or Inf; expected finite coordinates")
    limits = np.asarray(shape, dtype=np.float64) - 0.5
    outside = ((c < -0.5) | (c >= limits)).any(axis=1)
    if outside.any():
        raise InvalidInputError(
            f"{int(outside.sum())} centroid(s) lie outside the {shape[0]}×{shape[1]} image, "
            f"e.g. {c[np.flatnonzero(outside)[0]].tolist()}; expected rows in "
            f"[-0.5, {shape[0] - 0.5}) and columns in [-0.5, {shape[1] - 0.5})"
        )
    return c


def _gaussian_1d(centres: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """``(n, size)`` truncated Gaussians centred on ``centres``, each summing to 1."""
    x = np.arange(size, dtype=np.float64)[None, :] - centres[:, None]
    z = -0.5 * (x / sigma) ** 2
    g = np.exp(z - z.max(axis=1, keepdims=True))  # the nearest pixel gets 1: no underflow
    g[np.abs(x) > max(_TRUNCATE * sigma, 0.5)] = 0.0  # never cut the nearest pixel
    return g / g.sum(axis=1, keepdims=True)


def density_target(
    centroids: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    shape: tuple[int, int],
    *,
    sigma: float = 1.0,
    dot_value: float = 100.0,
) -> np.ndarray:
    """FCRN training target: a ``dot_value`` dot per cell smoothed by a Gaussian of ``σ``.

    Xie et al. 2016 (dots of 100 convolved with a Gaussian of σ = 1). The
    Gaussian is separable and, being renormalised inside the image, puts exactly
    ``dot_value`` in the map for each cell, border cells included, so
    ``density.sum() == dot_value * n_cells`` (module docstring).

    Args:
        centroids: ``(n, 2)`` cell centroids ``(row, col)`` inside the image (their
            rounded position must be a pixel); empty for no cell.
        shape: ``(H, W)`` of the map.
        sigma: Gaussian standard deviation in pixels, ``> 0``.
        dot_value: mass of each cell, ``> 0``.

    Returns:
        ``(H, W)`` float64 density map.
    """
    if not isinstance(shape, tuple | list) or len(shape) != 2 or any(
        isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in shape
    ):
        raise InvalidInputError(f"shape must be (H, W) positive integers, got {shape!r}")
    h, w = int(shape[0]), int(shape[1])
    for name, value in (("sigma", sigma), ("dot_value", dot_value)):
        check_number(name, value, error=InvalidInputError)
    c = _centroids(centroids, (h, w))
    if c.shape[0] == 0:
        return np.zeros((h, w))
    rows = _gaussian_1d(c[:, 0], h, sigma)
    cols = _gaussian_1d(c[:, 1], w, sigma)
    return dot_value * rows.T @ cols


def count_from_density(
    density: np.ndarray | torch.Tensor, *, dot_value: float = 100.0
) -> float | np.ndarray:
    """Cell count as the integral of a density map divided by ``dot_value`` (Xie et al. 2016).

    Args:
        density: ``(H, W)`` map or ``(B, 1, H, W)`` batch.
        dot_value: mass of one cell in the map (100 in FCRN).

    Returns:
        A float for an ``(H, W)`` map, a ``(B,)`` float64 array for a batch.
    """
    d = _density_array(density)
    check_number("dot_value", dot_value, error=InvalidInputError)
    if d.ndim == 2:
        return float(d.sum() / dot_value)
    return d.sum(axis=(1, 2, 3)) / dot_value


def _density_array(density: object) -> np.ndarray:
    if isinstance(density, torch.Tensor):
        density = density.detach().cpu().numpy()
    d = np.asarray(density, dtype=np.float64)
    if not (d.ndim == 2 or (d.ndim == 4 and d.shape[1] == 1)):
        raise InvalidInputError(f"density must be (H, W) or (B, 1, H, W), got shape {d.shape}")
    if not np.isfinite(d).all():
        raise InvalidInputError("density contains NaN or Inf; expected finite values")
    return d


def detect_peaks(
    density: np.ndarray | torch.Tensor, *, min_distance: int = 3, threshold: float = 8.0
) -> list[np.ndarray]:
    """Cell centroids as local maxima of a density map (Xie et al. 2016, detection).

    Uses :func:`~wslbench.metrics.extract_candidates`: a pixel is kept when it is
    the maximum of its ``(2·min_distance + 1)``-wide window, its value is
    ``> threshold``, and no higher kept maximum lies within Chebyshev distance
    ``min_distance``. With ``σ = 1`` and ``dot_value = 100`` an isolated cell
    peaks at about ``100 / (2π) ≈ 15.9``; the default threshold is about half of
    that. For a fair comparison fit it on training images: score the peaks with
    :func:`~wslbench.metrics.extract_candidates` and pick the threshold with
    :func:`~wslbench.metrics.detection.best_f1_threshold`.

    Args:
        density: ``(H, W)`` map or ``(B, 1, H, W)`` batch.
        min_distance: suppression radius in pixels, ``>= 1``.
        threshold: peaks must exceed this value.

    Returns:
        One ``(k, 2)`` float64 array of ``(row, col)`` per map (a list of one for
        an ``(H, W)`` map), sorted by decreasing peak value.
    """
    d = _density_array(density)
    maps = [d] if d.ndim == 2 else list(d[:, 0])
    return [
        extract_candidates(m, min_distance=min_distance, threshold=threshold)[:, :2] for m in maps
    ]


# ---------------------------------------------------------------------------------- network


def _conv(in_ch: int, out_ch: int, batch_norm: bool) -> nn.Sequential:
    """3×3 "same" convolution, (batch norm) and ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class DensityNet(nn.Module):
    """FCRN-A density regression network (Xie, Noble & Zisserman 2016, FCRN-A).

    Args:
        in_channels: channels of the input image (3 for RGB histology).
        base_width: channels of the first level (32 in FCRN-A); level ``i`` has
            ``base_width * 2 ** i``.
        depth: number of 2×2 poolings and of ×2 upsamplings (3 in FCRN-A); H and W
            must be divisible by ``2 ** depth``.
        bottleneck_width: channels of the bottleneck convolution (512 in FCRN-A);
            ``None`` gives ``base_width * 2 ** (depth + 1)`` (512 for 32 and 3).
        batch_norm: batch norm after every hidden convolution.

    Shapes:
        ``(B, in_channels, H, W) -> (B, 1, H, W)`` density map (linear output,
        scaled like :func:`density_target`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_width: int = 32,
        depth: int = 3,
        bottleneck_width: int | None = None,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if bottleneck_width is None:
            bottleneck_width = base_width * 2 ** (depth + 1)
        for name, value in (
            ("in_channels", in_channels),
            ("base_width", base_width),
            ("depth", depth),
            ("bottleneck_width", bottleneck_width),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DensityNet {name} must be a positive integer, got {value!r}")
        self.in_channels = in_channels
        self.base_width = base_width
        self.depth = depth
        self.bottleneck_width = bottleneck_width
        self.batch_norm = batch_norm

        widths = [base_width * 2**i for i in range(depth)]
        encoder: list[nn.Module] = []
        c_in = in_channels
        for w in widths:
            encoder += [_conv(c_in, w, batch_norm), nn.MaxPool2d(2)]
            c_in = w
        self.encoder = nn.Sequential(*encoder)
        self.bottleneck = _conv(c_in, bottleneck_width, batch_norm)
        decoder: list[nn.Module] = []
        c_in = bottleneck_width
        for w in reversed(widths):
            decoder += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                _conv(c_in, w, batch_norm),
            ]
            c_in = w
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Conv2d(widths[0], 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"DensityNet input must be a (B, C, H, W) tensor, got {shape}")
        if x.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"DensityNet was built for {self.in_channels} input channels, got {x.shape[1]}; "
                f"expected (B, {self.in_channels}, H, W)"
            )
        factor = 2**self.depth
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise InvalidInputError(
                f"DensityNet of depth {self.depth} needs H and W divisible by {factor}, got "
                f"{h}×{w}; pad the input (e.g. to {-(-h // factor) * factor}×"
                f"{-(-w // factor) * factor})"
            )
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise InvalidInputError(
                "DensityNet input contains NaN or Inf; expected finite pixel values")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density map ``(B, 1, H, W)`` for images ``(B, C, H, W)``."""
        self._check_input(x)
        return self.head(self.decoder(self.bottleneck(self.encoder(x))))


# ---------------------------------------------------------------------------------- training
