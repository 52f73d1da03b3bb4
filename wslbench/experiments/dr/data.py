"""Synthetic fundus data, Graham preprocessing and input-size fitting (Quellec et al. 2017, 5.1.1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wslbench.data.fundus_preprocess import (
    AugmentationParams,
    augment_image,
    augment_mask,
    preprocess_fundus,
    preprocess_mask,
    resample_like,
)
from wslbench.data.synthetic_fundus import make_fundus_case
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.dr.config import DRConfig

__all__ = ["DRSplit", "DRData", "make_dr_data", "fov_statistics", "shortcut_probe", "contralateral_index", "preprocess_images", "preprocess_real_image", "fit_input_size"]


_IDENTITY = AugmentationParams(rotation_deg=0.0, translation=(0.0, 0.0), scale=1.0, flip=False,
                               contrast=1.0)


@dataclass(frozen=True)
class DRSplit:
    """One split: network-ready images and their ground truth.

    Attributes:
        images: ``(N, 3, S, S)`` float32 (preprocessed when the config says so).
        raw: ``(N, 3, S, S)`` float32 photographs on the same grid, before the background
            subtraction (for display).
        grades: ``(N,)`` int64 grades 0–4; ``referable`` is grade ≥ 2.
        masks: ``(N, 4, S, S)`` bool lesion masks in :data:`LESION_TYPES` order.
        fov: ``(N, S, S)`` bool field of view (eroded when preprocessed).
    """

    images: torch.Tensor
    raw: torch.Tensor
    grades: torch.Tensor
    masks: torch.Tensor
    fov: torch.Tensor

    @property
    def referable(self) -> torch.Tensor:
        return self.grades >= 2

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: Sequence[int] | torch.Tensor) -> DRSplit:
        """The cases at ``index``."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return DRSplit(self.images[idx], self.raw[idx], self.grades[idx], self.masks[idx],
                       self.fov[idx])


@dataclass(frozen=True)
class DRData:
    """Train, validation and test splits."""

    train: DRSplit
    val: DRSplit
    test: DRSplit


def preprocess_images(
    images: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Graham preprocessing (5.1.1) of ``(N, 3, S, S)`` images at their own width.

    The field of view is rescaled to the full width, so the photographs and the lesion
    masks ``(N, K, S, S)`` are resampled the same way and stay aligned. Returns the
    preprocessed images, the resampled photographs (for display), the resampled masks
    and the eroded field-of-view masks ``(N, S, S)``.
    """
    if images.ndim != 4 or images.shape[1] != 3 or masks.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"images must be (N, 3, S, S) with (N, K, S, S) masks, got {tuple(images.shape)} "
            f"and {tuple(masks.shape)}"
        )
    size = int(images.shape[-1])
    out, fovs = torch.empty_like(images), torch.empty(images.shape[0], size, size, dtype=torch.bool)
    new_masks = torch.empty(masks.shape[0], masks.shape[1], size, size, dtype=torch.bool)
    photos = torch.empty_like(images)
    for i, img in enumerate(images):
        pre = preprocess_fundus(img.permute(1, 2, 0).numpy(), target_width=size)
        out[i] = torch.from_numpy(pre.image).permute(2, 0, 1)
        fovs[i] = torch.from_numpy(pre.fov)
        new_masks[i] = torch.from_numpy(preprocess_mask(masks[i].numpy(), pre))
        photos[i] = torch.from_numpy(resample_like(img.numpy(), pre)).clamp(0, 1)
    return out, photos, new_masks, fovs


def preprocess_real_image(image: np.ndarray, config: DRConfig) -> torch.Tensor:
    """A real fundus photograph ``(H, W, 3)`` as a network-ready ``(1, 3, S, S)`` tensor.

    Graham preprocessing (5.1.1) at ``config.image_size``, then resized to the input size.
    """
    pre = preprocess_fundus(image, target_width=config.image_size).image
    x = torch.from_numpy(pre).permute(2, 0, 1)
    if config.input_size != config.image_size:
        x = augment_image(x, _IDENTITY, output_size=config.input_size, neutral=0.5)
    return x[None].float()


def _make_eye_pairs(n: int, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``n`` cases as eye pairs: cases ``2k`` and ``2k + 1`` are the left and right eyes of
    patient ``k``; the right eye's grade is the left one's ± 1 at most (clipped to 0–4), as
    both eyes of a diabetic patient progress together (the contralateral-eye features of 5.6).
    """
    rng = np.random.default_rng(seed)
    seeds = np.random.SeedSequence(seed).spawn(n)
    grades: list[int] = []
    for k in range(n):
        if k % 2 == 0:
            grades.append(int(rng.integers(0, 5)))
        else:
            grades.append(int(np.clip(grades[-1] + rng.choice([-1, 0, 0, 1]), 0, 4)))
    cases = [make_fundus_case(np.random.default_rng(s), size, g) for s, g in zip(seeds, grades)]
    images = torch.from_numpy(np.stack([c.image.transpose(2, 0, 1) for c in cases]))
    masks = torch.from_numpy(np.stack([c.mask_stack() for c in cases]))
    fov = torch.from_numpy(np.stack([c.fov for c in cases]))
    return images, torch.tensor([c.grade for c in cases]), masks, fov


def make_dr_data(config: DRConfig) -> DRData:
    """Synthetic train/val/test splits of ``config`` (disjoint seeds, grades 0–4 uniform).

    Cases come in eye pairs (see :func:`contralateral_index`); the images are
    Graham-preprocessed (5.1.1) when ``config.preprocess``.
    """
    splits = []
    for offset, n in enumerate((config.n_train, config.n_val, config.n_test)):
        if n < 4 or n % 2:
            raise ConfigError(f"split sizes must be even and >= 4 (eye pairs), got {n}")
        raw, grades, masks, fov = _make_eye_pairs(n, config.image_size, config.seed * 1000 + offset)
        if config.preprocess:
            images, raw, masks, fov = preprocess_images(raw, masks)
        else:
            images = raw
        splits.append(DRSplit(images, raw, grades, masks, fov))
    return DRData(*splits)


def contralateral_index(n: int) -> torch.Tensor:
    """Index of the other eye of each case in a split of eye pairs (``2k`` ↔ ``2k + 1``)."""
    return torch.arange(n) ^ 1


def fit_input_size(split: DRSplit, input_size: int) -> DRSplit:
    """Resize a split to the network input size (identity when it already fits)."""
    if split.images.shape[-1] == input_size:
        return split

    def resize(x: torch.Tensor, neutral: float) -> torch.Tensor:
        return torch.stack([augment_image(im, _IDENTITY, output_size=input_size, neutral=neutral)
                            for im in x])

    masks = torch.stack([augment_mask(m, _IDENTITY, output_size=input_size) for m in split.masks])
    fov = augment_mask(split.fov, _IDENTITY, output_size=input_size)
    return DRSplit(resize(split.images, 0.5), resize(split.raw, 0.0), split.grades, masks.bool(),
                   fov.bool())


def fov_statistics(split: DRSplit) -> np.ndarray:
    """Per-channel mean and standard deviation of each network-ready image inside its
    field of view: ``(N, 6)`` float64, columns ``mean_R, mean_G, mean_B, std_R, std_G, std_B``.
    """
    x = split.images.double()
    fov = split.fov[:, None].double()
    n = fov.sum((2, 3)).clamp(min=1.0)
    mean = (x * fov).sum((2, 3)) / n
    var = (((x - mean[..., None, None]) ** 2) * fov).sum((2, 3)) / n
    return torch.cat([mean, var.sqrt()], dim=1).numpy()


def shortcut_probe(train: DRSplit, test: DRSplit) -> dict[str, float]:
    """Test ROC area of a logistic regression for referable DR on global image statistics.

    The embedded fundus task must not be solvable without the lesions (DESIGN §9): a
    standardised logistic regression fitted on ``train``'s per-channel field-of-view
    means (``"mean"``) and means plus standard deviations (``"mean_std"``), see
    :func:`fov_statistics`, scored on ``test``. Values near 0.5 mean the colour and
    brightness statistics of the whole field carry no grade information.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = train.referable.numpy(), test.referable.numpy()
    for name, y in (("train", y_train), ("test", y_test)):
        if y.min() == y.max():
            raise InvalidInputError(f"the {name} split needs referable and non-referable cases")
    f_train, f_test = fov_statistics(train), fov_statistics(test)
    out = {}
    for name, cols in (("mean", slice(0, 3)), ("mean_std", slice(0, 6))):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        clf.fit(f_train[:, cols], y_train)
        out[name] = float(roc_auc_score(y_test, clf.decision_function(f_test[:, cols])))
    return out
