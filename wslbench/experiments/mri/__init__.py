"""3D CNN on gray-matter maps and meaningful-perturbation masks (Thibeau-Sutre et al. 2020).

What notebook ``05_mri_masks`` calls: a synthetic AD/CN cohort built from the real
MNI GM template nilearn ships (known atrophy regions, several sessions per subject),
the quality check of 2.3.1, a subject-level age/sex-matched CV split
(``random_state = 2``, 2.2.3), the 3D CNN of 2.2.2 trained with early stopping on
the validation loss and kept at its best validation balanced accuracy, group-level
masks (2.3.3, 2.3.5) on the correctly classified AD training images validated on the
validation AD (never on a CNN at chance), session-level masks (2.3.4, λ × 100), and the 2.4 metrics: ROI cosine
similarities between masks (Tables 2–3), intra- vs inter-subject similarity,
prob_CNN, and — when the cohort has ground truth — the overlap of the mask with
the true atrophy. ``data_dir`` reads a user's CAPS-like folder instead (ClinicaDL
conventions, lazily, :mod:`wslbench.data.caps`), and the ``paper`` preset generates its
cohort to disk and reads it back a batch at a time (:mod:`wslbench.data.volume_store`)."""

from __future__ import annotations

from wslbench.experiments.mri.claims import CLAIMS, recorded_claims
from wslbench.experiments.mri.config import (
    MRI_PRESETS,
    MRIConfig,
    mri_config,
)
from wslbench.experiments.mri.data import (
    MRIData,
    make_mri_data,
    mri_cohort_cache_dir,
    synthetic_cohort_on_disk,
)
from wslbench.experiments.mri.export import (
    run_metrics,
    save_model,
)
from wslbench.experiments.mri.figures import (
    atrophy_centre,
    group_vs_truth_figure,
    session_masks_figure,
)
from wslbench.experiments.mri.masks import (
    TRUTH_METRICS,
    SessionMasks,
    at_chance,
    cross_prob_cnn,
    fold_masks,
    fold_table,
    group_mask,
    group_mask_cached,
    hyperparameter_similarity,
    intra_inter,
    learned_run,
    mask_report,
    mask_similarity_table,
    save_mask_nifti,
    session_masks,
    session_prob_cnn,
    table_values,
)
from wslbench.experiments.mri.train import (
    MRIRun,
    train_fold,
    train_fold_cached,
)

__all__ = ["at_chance", "mask_similarity_table", "CLAIMS", "recorded_claims", "atrophy_centre", "group_vs_truth_figure", "session_masks_figure", "learned_run", "SessionMasks", "session_prob_cnn", "MRIConfig", "MRI_PRESETS", "MRIData", "MRIRun", "mri_config", "make_mri_data", "mri_cohort_cache_dir", "synthetic_cohort_on_disk", "TRUTH_METRICS", "train_fold", "train_fold_cached", "group_mask", "group_mask_cached", "session_masks", "mask_report", "hyperparameter_similarity", "save_mask_nifti", "intra_inter", "fold_table", "fold_masks", "cross_prob_cnn", "table_values", "run_metrics", "save_model"]
