"""Labelled and unlabelled pools of synthetic fundus cases from three hospitals (Arora et al., 4.6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wslbench.data.ssl_fundus import (
    labelled_pool,
    make_ssl_fundus_dataset,
    stratified_split,
)
from wslbench.experiments.ssl.config import SSLConfig

__all__ = ["SSLData", "make_ssl_data"]


@dataclass(frozen=True)
class SSLData:
    """Images, labels (``-1`` for the extra unlabelled cases), hospitals and the pools.

    Attributes:
        images: ``(N, 3, S, S)``; labels: ``(N,)`` 0/1, ``-1`` where unknown.
        hospital: ``(N,)`` acquisition style of each case.
        labelled, unlabelled: training pools (indices into ``images``).
        val, test: validation and fixed test indices.
    """

    images: torch.Tensor
    labels: torch.Tensor
    hospital: torch.Tensor
    labelled: np.ndarray
    unlabelled: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_ssl_data(config: SSLConfig) -> SSLData:
    """The labelled data set split 60/20/20 across hospitals, its pools and the extra unlabelled set."""
    base = make_ssl_fundus_dataset(config.n_images, size=config.image_size,
                                   seed=config.data_seed, hospitals=config.hospitals)
    split = stratified_split(base.labels, base.hospital, seed=config.seed,
                             test_seed=config.data_seed)
    strata = base.hospital.numpy() * 2 + base.labels.numpy()
    keep, rest = labelled_pool(split.train, config.label_fraction, seed=config.seed,
                               stratify=strata)
    images, labels, hospital = base.images, base.labels.clone(), base.hospital
    extra = np.arange(0)
    if config.n_unlabelled > 0:
        more = make_ssl_fundus_dataset(config.n_unlabelled, size=config.image_size,
                                       seed=config.data_seed + 10_000,
                                       hospitals=config.hospitals)
        extra = np.arange(len(base), len(base) + len(more))
        images = torch.cat([images, more.images])
        labels = torch.cat([labels, torch.full((len(more),), -1)])
        hospital = torch.cat([hospital, more.hospital])
    return SSLData(images, labels, hospital, np.asarray(keep), np.concatenate([rest, extra]),
                   np.asarray(split.val), np.asarray(split.test))
