"""Synthetic glands (or a GlaS folder), folds and size annotations (Rony 2020, 2.1.2, 4.4.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wslbench.data.splits import Fold, kfold_splits
from wslbench.data.synthetic_histology import make_histology_dataset
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.wsl.config import WSLConfig

__all__ = ["WSLData", "make_wsl_data"]


@dataclass(frozen=True)
class WSLData:
    """Synthetic patches and their folds.

    Attributes:
        images: ``(N, 3, S, S)``; labels: ``(N,)``; masks: ``(N, S, S)`` region of the label.
        sizes: ``(N,)`` size fraction of that region.
        class_names: names of the classes (label order).
        folds: k folds sharing one fixed test set.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    sizes: torch.Tensor
    class_names: tuple[str, ...]
    folds: list[Fold]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _square(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Centre square crop of ``(C, H, W)`` resized to ``size`` (bilinear, or nearest for masks)."""
    side = min(x.shape[-2:])
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    crop = x[None, :, top:top + side, left:left + side].float()
    kwargs = {"antialias": True, "align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(crop, size=(size, size), mode=mode, **kwargs)[0]


def _load_glas_data(config: WSLConfig) -> WSLData:
    from wslbench.data.histology_loaders import load_glas

    ds = load_glas(config.data_dir)
    images = torch.stack([_square(torch.from_numpy(ds.load_image(i)).permute(2, 0, 1),
                                  config.image_size, "bilinear").clamp(0, 1)
                          for i in range(len(ds))])
    masks = torch.stack([_square(torch.from_numpy(ds.load_mask(i))[None], config.image_size,
                                 "nearest")[0] > 0.5 for i in range(len(ds))])
    labels = torch.as_tensor(ds.labels(), dtype=torch.long)
    train = np.asarray(ds.select(split="train"))
    test = np.asarray(sorted(ds.select(split="testA") + ds.select(split="testB")))
    if len(train) == 0 or len(test) == 0:
        raise InvalidInputError(f"GlaS folder {config.data_dir} needs train and test images")
    inner = kfold_splits(labels[train], n_splits=config.n_folds, test_fraction=0.0,
                         random_state=config.seed)
    folds = [Fold(train[f.train], train[f.val], test) for f in inner]
    return WSLData(images, labels, masks, masks.float().mean((1, 2)), ds.class_names, folds)


def make_wsl_data(config: WSLConfig) -> WSLData:
    """Patches of ``config.task`` and their stratified folds (fixed test set).

    Synthetic by default; the real GlaS data set when ``config.data_dir`` is set.
    """
    if config.data_dir is not None:
        if config.task != "glas":
            raise ConfigError(f"data_dir is read as a GlaS folder; set task='glas', got {config.task!r}")
        return _load_glas_data(config)
    ds = make_histology_dataset(config.n_images, size=config.image_size, seed=config.seed,
                                task=config.task, glas_grades=config.glas_grades)
    folds = kfold_splits(ds.labels, n_splits=config.n_folds, test_fraction=config.test_fraction,
                         random_state=config.seed)
    return WSLData(ds.images, ds.labels, ds.masks, ds.size_fractions, ds.class_names, folds)
