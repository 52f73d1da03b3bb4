"""Classical cell-detection floor: local maxima of a smoothed darkness map.

The no-learning reference for the cell detectors of Xue et al. (CNNCS): nuclei,
and mitotic figures most of all, are dark (hyperchromatic) blobs, so the local
maxima of a Gaussian-smoothed darkness map are cell candidates. Its one free
parameter that matters, the peak threshold, is fitted on training images to
maximise the pooled F1 of Xue et al., section 4.2
(:meth:`LocalMaximaDetector.fit_threshold`), so the floor is a fair one.

Darkness maps (``darkness=``):

* ``"grey"`` (default): ``1 − grey``, with grey the ITU-R BT.709 luminance of
  :func:`skimage.color.rgb2gray` (or the image itself when it is ``(H, W)``). It
  assumes nothing about the stain and works on any bright-field image.
* ``"haematoxylin"``: the haematoxylin optical density from Ruifrok & Johnston
  colour deconvolution (:func:`skimage.color.rgb2hed`, channel 0), which
  separates nuclear (haematoxylin) from cytoplasmic (eosin) staining on H&E
  slides; it needs RGB input.

The map is smoothed with :func:`scipy.ndimage.gaussian_filter` (``σ`` about the
cell radius suppresses texture within a nucleus) and its peaks are found with
:func:`~wslbench.metrics.extract_candidates` (window maximum, threshold, then
non-maximum suppression within ``min_distance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.color import rgb2gray, rgb2hed

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics.detection import best_f1_threshold
from wslbench.metrics.froc import extract_candidates

__all__ = ["DARKNESS_MAPS", "LocalMaximaDetector"]

DARKNESS_MAPS = ("grey", "haematoxylin")


class LocalMaximaDetector:
    """Cells as peaks of a Gaussian-smoothed darkness map (module docstring).

    Args:
        sigma: Gaussian smoothing σ in pixels (``> 0``), about the cell radius.
        min_distance: suppression radius in pixels (``>= 1``): two detections are
            at least this far apart (Chebyshev distance).
        threshold: keep peaks whose smoothed darkness is ``> threshold``; ``None``
            keeps every peak (flat background then yields a grid of plateau
            points). :meth:`fit_threshold` sets it.
        darkness: ``"grey"`` (1 − luminance) or ``"haematoxylin"`` (colour
            deconvolution).

    Example:
        >>> det = LocalMaximaDetector(sigma=3.0, min_distance=5)
        >>> det.fit_threshold(train_images, train_centroids, rho=8.0)  # doctest: +SKIP
        >>> cells = det.detect(test_images[0])  # (k, 2) of (row, col)  # doctest: +SKIP
    """

    def __init__(
        self,
        sigma: float = 3.0,
        min_distance: int = 5,
        threshold: float | None = None,
        darkness: str = "grey",
    ) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
            raise InvalidInputError(f"sigma must be a number > 0, got {sigma!r}")
        if isinstance(min_distance, bool) or not isinstance(min_distance, int) or min_distance < 1:
            raise InvalidInputError(f"min_distance must be an int >= 1, got {min_distance!r}")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number)
            or not math.isfinite(threshold)
        ):
            raise InvalidInputError(
                f"threshold must be a finite number or None, got {threshold!r}")
        if darkness not in DARKNESS_MAPS:
            raise ConfigError(
                f"darkness map {darkness!r} unknown; expected one of {list(DARKNESS_MAPS)}"
            )
        self.sigma = float(sigma)
        self.min_distance = min_distance
        self.threshold = threshold
        self.darkness = darkness

    def darkness_map(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """Smoothed darkness ``(H, W)`` of an image ``(3, H, W)`` or ``(H, W)`` in [0, 1]."""
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        img = np.asarray(image)
        if not (np.issubdtype(img.dtype, np.number) or img.dtype == np.bool_):
            raise InvalidInputError(
                f"image must be a numeric (3, H, W) or (H, W) array, got dtype {img.dtype}")
        if img.dtype == np.uint8:
            img = img / 255.0
        img = img.astype(np.float64, copy=False)
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[0] == 3)):
            raise InvalidInputError(f"image must be (3, H, W) RGB or (H, W) grey, got {img.shape}")
        if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
            raise InvalidInputError("image must hold finite values in [0, 1] (or be uint8)")
        if self.darkness == "haematoxylin":
            if img.ndim == 2:
                raise InvalidInputError("the haematoxylin darkness map needs a (3, H, W) RGB image")
            dark = rgb2hed(np.moveaxis(img, 0, -1))[..., 0]
        else:
            dark = 1.0 - (img if img.ndim == 2 else rgb2gray(np.moveaxis(img, 0, -1)))
        return ndimage.gaussian_filter(dark, self.sigma, mode="nearest")

    def candidates(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """Every peak, ignoring the threshold: ``(K, 3)`` rows of ``(row, col, darkness)``."""
        return extract_candidates(self.darkness_map(image), min_distance=self.min_distance)

    def detect(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """Detected cell centroids ``(k, 2)`` of ``(row, col)``, darkest first."""
        cand = self.candidates(image)
        if self.threshold is not None:
            cand = cand[cand[:, 2] > self.threshold]
        return cand[:, :2]

    def fit_threshold(
        self,
        images: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
        centroids: Sequence[np.ndarray | torch.Tensor | Sequence[Sequence[float]]],
        rho: float,
        *,
        method: str = "hungarian",
        max_thresholds: int = 100,
    ) -> float:
        """Set :attr:`threshold` to the value maximising pooled F1 on training images.

        Pooled F1 with matching radius ``ρ`` as in Xue et al., section 4.2; the
        search is :func:`~wslbench.metrics.detection.best_f1_threshold` over the
        peak values.

        Args:
            images: training images, a list or an ``(N, 3, H, W)`` / ``(N, H, W)`` stack.
            centroids: one ``(n_i, 2)`` array of ground-truth ``(row, col)`` per image.
            rho: match radius ``ρ > 0``.
            method: ``"hungarian"`` or ``"greedy"`` matching.
            max_thresholds: largest number of thresholds tried.

        Returns:
            The fitted threshold (also stored in :attr:`threshold`).
        """
        if len(images) != len(centroids) or len(images) == 0:
            raise InvalidInputError(
                f"got {len(images)} images and {len(centroids)} centroid arrays; expected "
                "one array per image and at least one image"
            )
        cands = [self.candidates(img) for img in images]
        self.threshold, _ = best_f1_threshold(
            cands, list(centroids), rho, method=method, max_thresholds=max_thresholds
        )
        return self.threshold
