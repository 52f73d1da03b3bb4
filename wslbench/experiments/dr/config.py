"""Presets of the DR heatmap experiment (Quellec et al. 2017, 5.1; the paper preset matches Table 1 and 5.1.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wslbench.data.fundus_preprocess import GRAHAM_OFFSET
from wslbench.presets import PresetTable

__all__ = ["DRConfig", "DR_PRESETS", "dr_config", "input_reference", "nu_area"]


@dataclass(frozen=True)
class DRConfig:
    """Hyper-parameters of the DR heatmap experiment (Quellec 2017, 5.1–5.5).

    Attributes:
        net: ``"net_a"``, ``"net_b"`` (Table 1) or ``"alexnet"``.
        image_size: side of the synthetic images and preprocessing target width (512 in 5.1.1).
        input_size: network input side after augmentation resize (448 in 5.1.1).
        width: channel multiplier of the network (1.0 = Table 1).
        n_train, n_val, n_test: split sizes (cases).
        batch_size: mini-batch size (36 in 5.2).
        iterations: training iterations (350,000 in 5.2).
        lr: Adam learning rate (1e-4 in 5.1.3).
        weight_decay: L2 factor on conv/dense weights (5e-4 in 5.1.3).
        nu: factor ν of the sparsity term L0 (eq. 6; 1e-3 retained in Table 2), defined
            for a ``nu_size`` × ``nu_size`` heatmap.
        nu_size: side of the heatmap at which ``nu`` is defined (448, the paper's input):
            L0 keeps the paper's summed L1 and is scaled by ``nu_size² / input_size²``,
            so the paper's ν values mean the same on the smaller presets (the sum over
            a 128² map is about 12× smaller than over 448²; see
            :mod:`wslbench.losses.sparsity`). ``None``: the plain sum at every size.
        criterion: ``"pi"`` (hue-constrained, eq. 3) or ``"omega"`` (sensitivity, eq. 2).
        q: colour-channel norm of ω (eq. 2).
        augment: random rotation/translation/scale/flip/contrast of 5.1.1.
        preprocess: Graham preprocessing of 5.1.1.
        checkpoint_every: iterations between validation checkpoints.
        select: validation metric that picks the checkpoint (and ν in :func:`select_nu`):
            ``"froc_mean"``, the mean lesion FROC area Ā_z (the paper's criterion, 5.3), or
            ``"image_auc"`` (referable-DR ROC area, the alternative).
        plateau_patience: validation checkpoints without improvement of ``select`` after
            which Adam's learning rate is divided by 10 (5.1.3); ``None``: constant rate.
        candidate_distance: minimal distance (px) between lesion candidates.
        candidate_sigma: Gaussian smoothing (px) of a heatmap before its local maxima are taken.
        max_fp: μ of the limited FROC area (10 in 5.5).
        rf_trees, rf_depth: random forest of the ensemble (500 and 25 in 5.6).
        table_nus: the ν values of the Table 2 sweep (:func:`nu_table`).
        seed: seed of data, initialisation, data order, augmentation and dropout.
        device: ``"cpu"``, ``"cuda"``…; ``None`` takes CUDA when available.
    """

    net: Literal["net_a", "net_b", "alexnet"] = "net_b"
    image_size: int = 128
    input_size: int = 128
    width: float = 0.25
    n_train: int = 320
    n_val: int = 64
    n_test: int = 96
    batch_size: int = 16
    iterations: int = 600
    lr: float = 1e-3
    weight_decay: float = 5e-4
    nu: float = 0.0
    nu_size: int | None = 448
    criterion: Literal["pi", "omega"] = "pi"
    q: float = 1.0
    augment: bool = True
    preprocess: bool = True
    checkpoint_every: int = 100
    select: Literal["froc_mean", "image_auc"] = "froc_mean"
    plateau_patience: int | None = 3
    candidate_distance: int = 3
    candidate_sigma: float = 1.0
    max_fp: float = 10.0
    rf_trees: int = 200
    rf_depth: int = 8
    table_nus: tuple[float, ...] = (0.0, 1e-3, 1e-2)
    seed: int = 0
    device: str | None = None


DR_PRESETS = PresetTable(
    DRConfig,
    smoke=DRConfig(image_size=64, input_size=64, width=0.125, n_train=48, n_val=24, n_test=24,
                   batch_size=8, iterations=30, checkpoint_every=10, candidate_distance=2,
                   rf_trees=20, rf_depth=4, nu=1e-3, table_nus=(0.0, 1e-3)),
    # demo selects on image AUC: at 128 px the π of a barely trained net responds to every
    # high-contrast blob, so validation FROC peaks at the first checkpoint (seed 3: iteration
    # 250, test AUC 0.633; by AUC iteration 1500, 0.893) and its plateau cuts the lr early.
    demo=DRConfig(nu=1e-3, iterations=1500, checkpoint_every=250, plateau_patience=2,
                  select="image_auc"),
    paper=DRConfig(net="net_b", image_size=512, input_size=448, width=1.0, n_train=35126,
                   n_val=3000, n_test=3000, batch_size=36, iterations=350_000, lr=1e-4,
                   nu=1e-3, checkpoint_every=4000, candidate_distance=8, rf_trees=500,
                   rf_depth=25, table_nus=(0.0, 1e-4, 1e-3, 1e-2)),
)


def dr_config(preset: str = "demo", /, **overrides: object) -> DRConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    return DR_PRESETS.build(preset, **overrides)


def input_reference(config: DRConfig) -> float:
    """Input value that encodes zero of the paper's ``I_n = 4 (I_r − I_b)`` (5.1.1).

    Graham-preprocessed images carry the display offset :data:`GRAHAM_OFFSET` (0.5), so
    π (eq. 3) and the sparsity term L0 (eq. 6) scale ``x − 0.5``; without preprocessing
    the photograph itself is the input and the mask multiplies it (0).
    """
    return GRAHAM_OFFSET if config.preprocess else 0.0


def nu_area(config: DRConfig) -> int | None:
    """Heatmap area at which ``config.nu`` is defined (``nu_size²``; ``None``: plain sum)."""
    return None if config.nu_size is None else int(config.nu_size) ** 2
