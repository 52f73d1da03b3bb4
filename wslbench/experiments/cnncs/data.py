"""Synthetic cell fields, their patches and centroids (Xue et al., 4.1 protocol at demo scale)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wslbench.data.cell_patches import extract_cell_patches
from wslbench.data.synthetic_cells import CellImageConfig, make_cell_dataset
from wslbench.experiments.cnncs.config import CNNCSConfig

__all__ = ["CellData", "make_cell_data"]


@dataclass(frozen=True)
class CellData:
    """Training patches (with rotations), test patches and the whole test images.

    Attributes:
        train_patches, test_patches: ``(N, 3, s, s)`` float32 in [0, 1].
        train_centroids, test_centroids: per patch ``(k, 2)`` (row, col) in the patch frame.
        test_images, test_image_centroids: the whole test images and their centroids.
        rho: the matching distance (config's or the smallest target radius).
    """

    train_patches: torch.Tensor
    train_centroids: list[np.ndarray]
    test_patches: torch.Tensor
    test_centroids: list[np.ndarray]
    test_images: torch.Tensor
    test_image_centroids: list[np.ndarray]
    rho: float


def make_cell_data(config: CNNCSConfig) -> CellData:
    """Generate the images (seeded) and cut them into patches (4.3)."""
    image_config = CellImageConfig(size=config.image_size, target_mean=config.target_mean,
                                   max_targets=max(12, int(4 * config.target_mean)),
                                   clutter_density=config.clutter_density)
    train = make_cell_dataset(config.n_train_images, image_config, seed=config.seed)
    test = make_cell_dataset(config.n_test_images, image_config, seed=config.seed + 10_000)
    train_patches = extract_cell_patches(train.images, train.centroids, size=config.patch_size,
                                         rotations=config.rotations)
    test_patches = extract_cell_patches(test.images, test.centroids, size=config.patch_size,
                                        rotations=False)
    rho = float(config.rho) if config.rho is not None else float(min(train.min_radius, test.min_radius))
    return CellData(torch.as_tensor(train_patches.images), _in_box(train_patches.centroids, config),
                    torch.as_tensor(test_patches.images), _in_box(test_patches.centroids, config),
                    torch.as_tensor(test.images), list(test.centroids), rho)


def _in_box(centroids: Sequence[np.ndarray], config: CNNCSConfig) -> list[np.ndarray]:
    """Patch extraction keeps a cell whose centroid *pixel* is inside, i.e. coordinates in
    [−½, s − ½]; the codec's box is [0, s]: the half-pixel overhang is clamped."""
    return [np.clip(np.asarray(c, dtype=float).reshape(-1, 2), 0.0, float(config.patch_size))
            for c in centroids]
