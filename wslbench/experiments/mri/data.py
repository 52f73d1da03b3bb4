"""The synthetic cohort, quality check (2.3.1) and subject-level cross-validation (2.2.3)."""

from __future__ import annotations

from dataclasses import dataclass

from wslbench.data.cohort_tsv import quality_check
from wslbench.data.parcellation import Parcellation, default_parcellation
from wslbench.data.synthetic_mri import SyntheticCohort, make_synthetic_cohort
from wslbench.experiments.mri.config import MRIConfig
from wslbench.training.mri_training import subject_level_cv

__all__ = ["MRIData", "make_mri_data"]


@dataclass(frozen=True)
class MRIData:
    """The cohort after the quality check, its folds and the parcellation.

    Attributes:
        cohort: the sessions kept by the quality check.
        qc_rejected: ``(participant, session, max)`` of the rejected sessions.
        folds: subject-level folds (fixed, age/sex-matched test set).
        balance: age/sex standardized mean differences of the split.
        atlas: the default parcellation on the cohort's grid.
    """

    cohort: SyntheticCohort
    qc_rejected: list[tuple[str, str, float]]
    folds: list
    balance: object
    atlas: Parcellation


def make_mri_data(config: MRIConfig) -> MRIData:
    """Synthetic cohort → quality check (2.3.1) → subject-level CV split (2.2.3)."""
    full = make_synthetic_cohort(config.n_subjects, config.sessions_per_subject,
                                 grid=config.grid, seed=config.seed,
                                 ad_fraction=config.ad_fraction, atrophy=config.atrophy,
                                 n_qc_fail=config.n_qc_fail,
                                 region_dropout=config.region_dropout,
                                 weight_jitter=config.weight_jitter,
                                 location_mm=config.location_mm,
                                 asymmetry_sd=config.asymmetry_sd,
                                 cn_decoy=config.cn_decoy)
    _, report = quality_check(full.volumes, keys=full.keys)
    rejected = [(r.participant_id, r.session_id, float(r.max_value)) for r in report.rejected]
    cohort = full.select(list(report.kept))
    splits = subject_level_cv(cohort.participant_ids, cohort.labels, cohort.ages, cohort.sexes,
                              n_splits=config.n_splits, random_state=2,
                              test_fraction=config.test_fraction, age_bins=config.age_bins)
    return MRIData(cohort, rejected, splits.folds, splits.balance,
                   default_parcellation(grid=config.grid))
