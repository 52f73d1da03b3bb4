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
from wslbench.errors import ConfigError
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
    """The labelled data set split 60/20/20 across hospitals, its pools and the extra unlabelled set.

    4.6: the split is stratified across hospitals and labels, the test set is drawn once
    from ``data_seed``. With ``config.retrain`` the validation part joins the training
    part (``val`` is empty). The labelled pool holds ``label_fraction`` of the training
    part, stratified by (hospital, label), drawn among the cases of the first
    ``labelled_hospitals`` hospitals; every other training case (unless
    ``unlabel_rest`` is off) and the ``n_unlabelled`` extra cases (the
    Messidor-Extension stand-in, from all hospitals) form the unlabelled pool.

    Raises:
        ConfigError: the labelled hospitals hold fewer training cases than the pool needs.
    """
    base = make_ssl_fundus_dataset(config.n_images, size=config.image_size,
                                   seed=config.data_seed, hospitals=config.hospitals)
    split = stratified_split(base.labels, base.hospital, seed=config.seed,
                             test_seed=config.data_seed)
    train, val = np.asarray(split.train), np.asarray(split.val)
    if config.retrain:
        train, val = np.sort(np.concatenate([train, val])), val[:0]
    hospital = base.hospital.numpy()
    allowed = config.hospitals if config.labelled_hospitals is None else config.labelled_hospitals
    candidates = train[hospital[train] < allowed]
    wanted = round(config.label_fraction * len(train))
    if wanted > len(candidates):
        raise ConfigError(
            f"label_fraction={config.label_fraction} asks for {wanted} labelled cases but the "
            f"{allowed} labelled hospital(s) hold {len(candidates)} training cases; lower "
            "label_fraction or raise labelled_hospitals")
    keep, rest = labelled_pool(candidates, max(wanted, 1) / len(candidates), seed=config.seed,
                               stratify=hospital * 2 + base.labels.numpy())
    rest = (np.sort(np.concatenate([rest, np.setdiff1d(train, candidates)]))
            if config.unlabel_rest else rest[:0])
    images, labels, hospitals = base.images, base.labels.clone(), base.hospital
    extra = np.arange(0)
    if config.n_unlabelled > 0:
        more = make_ssl_fundus_dataset(config.n_unlabelled, size=config.image_size,
                                       seed=config.data_seed + 10_000,
                                       hospitals=config.hospitals)
        extra = np.arange(len(base), len(base) + len(more))
        images = torch.cat([images, more.images])
        labels = torch.cat([labels, torch.full((len(more),), -1)])
        hospitals = torch.cat([hospitals, more.hospital])
    return SSLData(images, labels, hospitals, np.asarray(keep), np.concatenate([rest, extra]),
                   val, np.asarray(split.test))
