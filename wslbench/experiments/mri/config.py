"""Presets of the MRI mask experiment (Thibeau-Sutre et al. 2020, 2.2–2.4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from wslbench.errors import ConfigError
from wslbench.models.mri import MRI_CNN_CONFIGS
from wslbench.presets import PresetTable

__all__ = ["MRIConfig", "MRI_PRESETS", "mri_config"]


_log = logging.getLogger("wslbench")


@dataclass(frozen=True)
class MRIConfig:
    """Hyper-parameters of the MRI experiment (Thibeau-Sutre et al. 2020, 2.2–2.4).

    Attributes:
        grid: ``"paper"`` (121×145×121 at 1.5 mm), ``"smoke"`` (61×73×61 at 3 mm) or a voxel
            size in mm (the ``smoke`` preset: 4 mm, 45×55×46, where the demo CNN learns in
            under a minute on 2 cores; at 6 mm the smoothed template's maximum falls below the
            0.95 of the quality check, 2.3.1).
        cnn: 3D CNN configuration (:data:`wslbench.models.mri.MRI_CNN_CONFIGS`).
        n_subjects, sessions_per_subject, ad_fraction, atrophy: synthetic cohort (``atrophy``
            0.6: at 0.3, with the subjects' atrophy differing, the demo CNN found the signal
            only after 18 epochs; at 0.6 after 7-11, issue 24).
        region_dropout, weight_jitter, location_mm, asymmetry_sd: how AD subjects' atrophy
            differs (:func:`~wslbench.data.synthetic_mri.sample_synthetic_subject`), so that
            intra- and inter-subject similarity can differ (2.3.4).
        cn_decoy: CN subjects lose as much GM as AD subjects, at random places away from
            the AD regions, so that only the location of the loss tells AD from CN (a
            whole-volume GM histogram must not classify, DESIGN §9).
        n_qc_fail: sessions made to fail the quality check (max < 0.95, 2.3.1).
        n_splits, folds_to_run, test_fraction: subject-level CV (5 folds, 2.2.3).
        age_bins: age strata of the age/sex matching of the test set.
        epochs, batch_size, lr, weight_decay, patience: CNN training (early stopping 5).
        lambda1, lambda2, beta1, beta2: mask regularisation of eq. 2 (1e-4, 1e-2, 0.1, 1;
            ``smoke`` takes λ₂ = 1e-3, the β tables' value: its 3 mask epochs cannot bring a
            λ₂ = 1e-2 mask back from Adam's first steps, measured on the stand-in network of
            the tests: validation loss 45.6 → 8.7, mask all ones after the threshold).
        mask_lr: mask learning rate (0.1, 2.3.5).
        mask_epochs, mask_tolerance, mask_patience: group-mask optimisation and its stop.
        session_iterations: maximum steps of a session-level mask.
        session_factor: multiplier of λ₁ and λ₂ for session masks (100 in 2.3.4; 10 in
            ``smoke``/``demo``: on the smoke CNN, 12 sessions, 100 steps, ×100 left every
            mask all ones, ×10 gave intra/inter ROI similarity 0.95/0.49 and ×1 0.96/0.85,
            issue 24).
        session_limit: most session masks (whole subjects; ``None``: every correctly
            classified AD session of a repeated subject, 2.3.4).
        min_val_balanced_accuracy: a CNN whose kept validation balanced accuracy is below
            it is refused before any mask (at chance: its masks would explain nothing).
        refuse_at_chance: off only in ``smoke``: masks of a CNN at chance are computed (to
            test the plumbing in seconds) and flagged (``cnn_at_chance`` in the notebook).
        beta1_values, beta2_values: the β grids of Table 2.
        lambda1_values, lambda2_values: the λ grids of Table 3.
        beta_lambda2: λ₂ of the β tables (Table 2 was computed with λ₂ = 0.001, 3.2.3).
        mask_lr_cases: ``(name, value, lr)``: a grid value optimised with its own mask
            learning rate (Fig. 4: lr = 0.01 for λ₂ = 0.1).
        stability_folds, stability_runs: folds and training runs (seeds) whose group masks
            are compared (Fig. 6, 2.4).
        train_seed: seed of the CNN initialisation and data order (runs differ by it).
        seed: seed of the synthetic cohort (the split uses random_state 2).
        device: ``None`` takes CUDA when available.
        data_dir: a CAPS-like folder of real GM maps (``participants.tsv`` with ClinicaDL's
            participant_id, session_id, diagnosis AD/CN, age, sex, and the ``t1-volume`` maps;
            :func:`~wslbench.data.caps.read_caps`), read lazily instead of the synthetic
            cohort; without ground-truth atrophy the truth-based metrics are absent.
        atlas_path: a label atlas NIfTI (AAL2-style, 2.4) on the maps' grid for the ROI
            similarity; ``None`` takes the default parcellation (maps on a known MNI grid).
        cohort_on_disk: generate the synthetic cohort session by session into a cache
            folder (``$WSLBENCH_CACHE_DIR/mri_cohorts`` or ``~/.cache/wslbench/mri_cohorts``)
            and read it back lazily, so memory stays bounded by a batch (on in ``paper``:
            666 × 3 sessions at 121×145×121 are 17 GB as float32).
    """

    grid: Literal["paper", "smoke"] | float = "smoke"
    cnn: str = "smoke"
    n_subjects: int = 60
    sessions_per_subject: int = 2
    ad_fraction: float = 0.5
    atrophy: float = 0.6
    region_dropout: float = 0.5
    weight_jitter: float = 0.3
    location_mm: float = 3.0
    asymmetry_sd: float = 0.3
    cn_decoy: bool = True
    n_qc_fail: int = 1
    n_splits: int = 5
    folds_to_run: int = 1
    test_fraction: float = 0.3
    age_bins: int = 3
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    lambda1: float = 1e-4
    lambda2: float = 1e-2
    beta1: float = 0.1
    beta2: float = 1.0
    mask_lr: float = 0.1
    mask_epochs: int = 30
    mask_tolerance: float = 0.05
    mask_patience: int = 5
    session_iterations: int = 100
    session_factor: float = 100.0
    session_limit: int | None = None
    min_val_balanced_accuracy: float = 0.7
    refuse_at_chance: bool = True
    beta1_values: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
    beta2_values: tuple[float, ...] = (1.0, 2.0, 3.0)
    lambda1_values: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0001)
    lambda2_values: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0001)
    beta_lambda2: float = 1e-3
    mask_lr_cases: tuple[tuple[str, float, float], ...] = (("lambda2", 0.1, 0.01),)
    stability_folds: int = 2
    stability_runs: int = 2
    train_seed: int = 0
    seed: int = 0
    device: str | None = None
    data_dir: str | None = None
    atlas_path: str | None = None
    cohort_on_disk: bool = False


MRI_PRESETS = PresetTable(
    MRIConfig,
    smoke=MRIConfig(grid=4.0, cnn="demo", n_subjects=120, sessions_per_subject=2, epochs=15,
                    mask_epochs=3, lambda2=1e-3,
                    refuse_at_chance=False,
                    age_bins=2, lambda1_values=(0.01, 0.0001), lambda2_values=(0.01, 0.001), session_iterations=30, session_limit=6,
                    session_factor=10.0,
                    beta1_values=(0.1, 1.0), beta2_values=(1.0, 2.0)),
    demo=MRIConfig(grid=4.0, cnn="demo", n_subjects=120, mask_epochs=10, lambda2=1e-3,
                   session_limit=8, session_factor=10.0),
    paper=MRIConfig(grid="paper", cnn="paper", n_subjects=666, sessions_per_subject=3,
                    epochs=30, lr=1e-4, folds_to_run=5, mask_epochs=150, session_iterations=5000,
                    age_bins=5, stability_folds=5, stability_runs=5, cohort_on_disk=True),
)


def mri_config(preset: str = "demo", /, **overrides: object) -> MRIConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    config = MRI_PRESETS.build(preset, **overrides)
    if config.cnn not in MRI_CNN_CONFIGS:
        raise ConfigError(f"unknown cnn {config.cnn!r}; expected one of: {', '.join(MRI_CNN_CONFIGS)}")
    return config
