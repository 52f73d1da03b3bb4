"""Presets of the semi-supervised DR experiment (Arora et al., 4.2–5.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from wslbench.errors import ConfigError
from wslbench.presets import PresetTable

__all__ = ["SSLConfig", "SSL_PRESETS", "REGIMES", "ssl_config"]


REGIMES = ("cl", "ae_then_cl", "combined")


@dataclass(frozen=True)
class SSLConfig:
    """Hyper-parameters of the SSL DR experiment (Arora et al., 4.2–5.2).

    Attributes:
        architecture: ``"aecl1"`` or ``"aeres18"`` (4.2).
        regime: ``"cl"``, ``"ae_then_cl"`` or ``"combined"`` (4.3).
        image_size: side of the images (512 in 4.5).
        base_width: width multiplier of the encoder (64 = ResNet-18 for AERes18).
        num_pools: AECL1 pooling layers (8 in the paper; fewer for small inputs).
        n_images: labelled-data-set cases (Messidor: 1200), split 60/20/20.
        n_unlabelled: extra unlabelled cases (the Messidor Extension).
        label_fraction: share of the training part whose labels are kept; the rest
            joins the unlabelled pool.
        hospitals: acquisition styles the split is stratified across (3).
        epochs: epochs of classifier training (and of combined training).
        ae_epochs: autoencoder pre-training epochs of ``"ae_then_cl"``.
        batch_size: minibatch size (48 for Res18 in 5.2).
        optimizer: ``"sgd"`` (Res18, 5.2) or ``"adam"`` (CL1, 5.2).
        lr, momentum, nesterov, weight_decay: optimiser (Res18: 0.004, 0.9, False, 1e-5).
        lam: λ of eq. 3 (3 for AERes18, 400 for AECL1, Table 2).
        adaptive_lambda: recompute λ by eq. 4 at every labelled step.
        alpha: positive-class weight α of eq. 2 (1 on balanced data).
        augment: rotation ±15°, scale [0.9, 1], horizontal flip (4.5).
        fractions: label fractions of :func:`label_fraction_sweep` in the notebook.
        data_seed: seed of the synthetic data set and of its fixed test set (4.6: the test
            set is "always the same set", as the data set is).
        seed: seed of the train/val split and pools, initialisation, data order, augmentation.
        device: ``None`` takes CUDA when available.
    """

    architecture: Literal["aecl1", "aeres18"] = "aeres18"
    regime: Literal["cl", "ae_then_cl", "combined"] = "combined"
    image_size: int = 64
    base_width: int = 8
    num_pools: int = 4
    n_images: int = 240
    n_unlabelled: int = 240
    label_fraction: float = 0.25
    hospitals: int = 3
    epochs: int = 12
    ae_epochs: int = 6
    batch_size: int = 16
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.004
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-5
    lam: float = 3.0
    adaptive_lambda: bool = False
    alpha: float = 1.0
    augment: bool = True
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    data_seed: int = 0
    seed: int = 0
    device: str | None = None


SSL_PRESETS = PresetTable(
    SSLConfig,
    smoke=SSLConfig(image_size=64, base_width=4, n_images=40, n_unlabelled=20, epochs=2,
                    ae_epochs=1, batch_size=8, fractions=(0.5,)),
    demo=SSLConfig(),
    paper=SSLConfig(image_size=512, base_width=64, num_pools=8, n_images=1200,
                    n_unlabelled=1748, label_fraction=1.0, epochs=100, ae_epochs=50,
                    batch_size=48, fractions=(0.1, 0.25, 0.5, 1.0)),
)


def ssl_config(preset: str = "demo", /, **overrides: object) -> SSLConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = SSL_PRESETS.build(preset, **overrides)
    if not 0.0 < config.label_fraction <= 1.0:
        raise ConfigError(f"label_fraction must be in (0, 1], got {config.label_fraction}")
    return config


def _device(config: SSLConfig) -> torch.device:
    from wslbench.devices import resolve_device

    return resolve_device(config.device)
