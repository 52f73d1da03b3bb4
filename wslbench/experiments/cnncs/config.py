"""Presets of the cell-detection experiment (Xue et al., 3.1–4.2; the paper preset is field by field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from wslbench.cs.solvers import list_solvers
from wslbench.errors import ConfigError
from wslbench.models.cnncs import CNNCS_VARIANTS
from wslbench.presets import PresetTable

__all__ = ["CNNCSConfig", "CNNCS_PRESETS", "cnncs_config"]


@dataclass(frozen=True)
class CNNCSConfig:
    """Hyper-parameters of the CNNCS experiment (Xue et al., 3–4).

    Attributes:
        image_size, n_train_images, n_test_images: the synthetic microscopy images.
        target_mean, clutter_density: mean number of mitosis-like targets per image and
            density of the look-alike nuclei (:class:`~wslbench.data.synthetic_cells.CellImageConfig`).
        patch_size: side of the training patches (260 in 4.3).
        rotations: add the three 90° rotations of every training patch (4.3).
        m, n_lines, beta: code length m, observation lines L and count weight β (3.1, 4.1).
        encoding: ``"signed"`` (the paper's signed distances, 3.1) or ``"count"`` (the
            alternative; :mod:`wslbench.cs.codec`).
        bin_size: width of the position bins in pixels (1 in the paper and the ``paper``
            preset). The ``demo`` preset uses 2 px, measured: with 1-px bins its CNNCS (20
            epochs, 64-px patches, ResNet-18/16 from scratch) still lowers the L2 loss
            steadily at the last epoch and detects nothing (patch F1 ≤ 0.06 at any
            threshold); with 2-px bins, otherwise equal, patch F1 0.59 (issue 23 note).
        lam: λ of the recovery problem eq. 4.
        alpha: α of the L1 term of eq. 3 (end-to-end variants).
        threshold: threshold on the recovered â (per line; 4.3: 15 px on 260-px patches,
            a distance for signed codes, a number of cells for count codes).
        bandwidth: mean-shift bandwidth in pixels (4.3: 40 on 260-px patches).
        peak_radius: half-width in bins of the decoder's peak window, whose values are
            summed into a cell's distance (:func:`~wslbench.cs.decode.decode`).
        rho: matching distance of 4.2; ``None`` takes the radius of the smallest target.
        variant: ``"cnncs"``, ``"ecnncs1"`` or ``"ecnncs2"`` (4.1).
        solver, solver_iterations: recovery of ``cnncs`` / ``ecnncs2`` (any registered solver).
        lista_iterations: T of the ECNNCS-1 LISTA.
        rule: backward of ECNNCS-2: ``"approx"`` (eq. 8–9) or ``"exact"`` (eq. 5–7).
        depth, base_width, output_stride, head_grid: the ResNet regressor (152/64 in 4.1).
        pretrained_weights: a local file with a state dict of the ResNet backbone (bare or
            under ``state_dict``; names as :func:`wslbench.nn.resnet.resnet`'s, with or
            without a ``backbone.`` prefix) loaded before training; nothing is downloaded.
        train_last_layer_only: train only the FC layer (4.1: "We perform fine-tuning on the
            weights in the fully-connected layer of the ResNet"); needs ``pretrained_weights``
            (a random backbone frozen learns nothing). Batch-norm statistics still follow
            the training batches (the loop trains in ``train`` mode).
        epochs, batch_size, lr, weight_decay: Adam training of the regressor.
        recovery_lr: Adam learning rate of the reconstruction layer's parameters (LISTA's W
            and S, ECNNCS-2's D). They get gradients from the L1 term only, which Adam
            normalises whatever α is: at the CNN's rate they reach "â = 0", the cheapest way
            to remove false positives, within an epoch.
        warmup_epochs: epochs of the end-to-end variants trained on the L2 term only before
            the L1 term of eq. 3 is switched on (the paper does not say how training starts;
            from a random CNN the recovered â has no true support yet, and the L1 term,
            whose gradient lives on the support of â (eq. 5–9), can only shrink false
            positives: alone it drives the codes to zero; measured with signed distances, demo
            preset, seed 2: ECNNCS-2 whole-image F1 0.400 with 10 warm-up epochs, 0.068 without).
        density_epochs, density_width: the density-map baseline.
        seed: seed of the data, D and the training.
        device: ``None`` takes CUDA when available.
    """

    image_size: int = 192
    n_train_images: int = 32
    n_test_images: int = 16
    target_mean: float = 6.0
    clutter_density: float = 0.55
    patch_size: int = 64
    rotations: bool = True
    m: int = 28
    n_lines: int = 27
    encoding: Literal["signed", "count"] = "signed"
    bin_size: float = 2.0
    beta: float = 0.2
    lam: float = 0.39
    alpha: float = 1.3
    threshold: float = 4.0
    bandwidth: float = 10.0
    peak_radius: int = 2
    rho: float | None = None
    variant: Literal["cnncs", "ecnncs1", "ecnncs2"] = "ecnncs2"
    solver: str = "fista"
    solver_iterations: int = 200
    lista_iterations: int = 30
    rule: Literal["approx", "exact"] = "approx"
    depth: int = 18
    base_width: int = 16
    output_stride: int = 16
    head_grid: int = 4
    pretrained_weights: str | None = None
    train_last_layer_only: bool = False
    epochs: int = 20
    warmup_epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    recovery_lr: float = 1e-5
    weight_decay: float = 1e-4
    density_epochs: int = 15
    density_width: int = 8
    seed: int = 0
    device: str | None = None


CNNCS_PRESETS = PresetTable(
    CNNCSConfig,
    # smoke: the demo's code (m = 28, L = 27 signed-distance lines in 2-px bins) on smaller
    # images, patches and network, and enough steps to detect cells (measured, README "CNNCS")
    smoke=CNNCSConfig(image_size=96, n_train_images=24, n_test_images=6, target_mean=4.0,
                      patch_size=48, base_width=8, epochs=20, warmup_epochs=10, batch_size=16,
                      lr=3e-3, density_epochs=2, density_width=8, solver_iterations=50,
                      lista_iterations=5),
    demo=CNNCSConfig(),
    paper=CNNCSConfig(image_size=512, n_train_images=560, n_test_images=240, target_mean=2.0,
                      patch_size=256, m=112, n_lines=27, beta=0.20, encoding="signed",
                      bin_size=1.0, lam=0.39, alpha=1.3, threshold=15.0, bandwidth=40.0,
                      depth=152, base_width=64, output_stride=32, head_grid=1, epochs=50,
                      warmup_epochs=10, recovery_lr=1e-5, batch_size=32,
                      density_epochs=50, density_width=32),
)


def cnncs_config(preset: str = "demo", /, **overrides: object) -> CNNCSConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = CNNCS_PRESETS.build(preset, **overrides)
    if config.variant not in CNNCS_VARIANTS:
        raise ConfigError(f"unknown variant {config.variant!r}; expected one of: {', '.join(CNNCS_VARIANTS)}")
    if config.solver not in list_solvers():
        raise ConfigError(f"unknown solver {config.solver!r}; expected one of: {', '.join(list_solvers())}")
    if config.patch_size > config.image_size:
        raise ConfigError(f"patch_size {config.patch_size} is larger than image_size "
                          f"{config.image_size}; expected patch_size <= image_size")
    _check_ranges(config)
    if config.train_last_layer_only and config.pretrained_weights is None:
        raise ConfigError("train_last_layer_only needs pretrained_weights (a local state dict of "
                          "the backbone): a random backbone that is never trained learns nothing")
    return config


#: (field, lowest allowed, whether the bound itself is allowed) of the numeric fields.
_RANGES: tuple[tuple[str, float, bool], ...] = (
    ("image_size", 1, False), ("n_train_images", 1, True), ("n_test_images", 1, True),
    ("target_mean", 0, True), ("clutter_density", 0, True), ("patch_size", 8, True),
    ("m", 1, True), ("n_lines", 2, True), ("bin_size", 0, False), ("beta", 0, False),
    ("lam", 0, True), ("alpha", 0, True), ("threshold", 0, False), ("bandwidth", 0, False),
    ("rho", 0, False), ("peak_radius", 0, True), ("solver_iterations", 1, True), ("lista_iterations", 1, True),
    ("base_width", 1, True), ("head_grid", 1, True), ("epochs", 1, True), ("batch_size", 1, True),
    ("warmup_epochs", 0, True),
    ("lr", 0, False), ("recovery_lr", 0, True), ("weight_decay", 0, True), ("density_epochs", 1, True),
    ("density_width", 1, True),
)


def _check_ranges(config: CNNCSConfig) -> None:
    """Refuse out-of-range or non-finite values now rather than after training."""
    for name, low, inclusive in _RANGES:
        value = getattr(config, name)
        if value is None:  # only rho may be None (the smallest target radius)
            continue
        ok = np.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"{name} = {value!r} is out of range; expected a finite number {bound}")


def _device(config: CNNCSConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
