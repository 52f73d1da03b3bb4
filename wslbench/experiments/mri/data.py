"""The cohort, quality check (2.3.1) and subject-level cross-validation (2.2.3).

Three sources, one interface (``volumes`` indexed a batch at a time, labels, ids, ages,
sexes, affine, optional ground-truth ``atrophy_maps``):

- the synthetic cohort in memory (``smoke``, ``demo``: a few hundred MB at most);
- the synthetic cohort generated session by session into a cache folder and read back
  lazily (``cohort_on_disk``, on in ``paper``: 666 subjects × 3 sessions at 121×145×121);
- a user's CAPS-like folder (``data_dir``, ClinicaDL conventions), read lazily, without
  ground truth unless it holds atrophy maps (:func:`~wslbench.data.caps.read_caps`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from wslbench.data import synthetic_mri
from wslbench.data.caps import MRICohort, load_atlas, read_caps, write_synthetic_caps
from wslbench.data.cohort_tsv import quality_check
from wslbench.data.parcellation import Parcellation, default_parcellation
from wslbench.data.synthetic_mri import (
    COHORT_TSV_NAME,
    SyntheticCohort,
    make_synthetic_cohort,
    mni_grid,
    sample_synthetic_cohort,
)
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments.mri.config import MRIConfig
from wslbench.progress import ProgressCallback
from wslbench.training.mri_training import subject_level_cv

__all__ = ["MRIData", "make_mri_data", "mri_cohort_cache_dir", "synthetic_cohort_on_disk"]

_log = logging.getLogger("wslbench")

#: Environment variable of the cache root (shared with the dashboards' model cache).
CACHE_DIR_ENV = "WSLBENCH_CACHE_DIR"


@dataclass(frozen=True)
class MRIData:
    """The cohort after the quality check, its folds and the parcellation.

    Attributes:
        cohort: the sessions kept by the quality check (``volumes`` a tensor in memory or a
            lazy :class:`~wslbench.data.volume_store.VolumeStore`; ``atrophy_maps`` ``None``
            without ground truth).
        qc_rejected: ``(participant, session, max)`` of the rejected sessions.
        folds: subject-level folds (fixed, age/sex-matched test set).
        balance: age/sex standardized mean differences of the split.
        atlas: the parcellation of the ROI similarity (2.4): the user's ``atlas_path``, else
            the default one on the cohort's grid.
    """

    cohort: SyntheticCohort | MRICohort
    qc_rejected: list[tuple[str, str, float]]
    folds: list
    balance: object
    atlas: Parcellation


def mri_cohort_cache_dir() -> Path:
    """Root of the on-disk synthetic cohorts: ``$WSLBENCH_CACHE_DIR/mri_cohorts``, else
    ``~/.cache/wslbench/mri_cohorts``."""
    value = os.environ.get(CACHE_DIR_ENV)
    base = Path(value).expanduser() if value else Path.home() / ".cache" / "wslbench"
    return base / "mri_cohorts"


def _sample(config: MRIConfig) -> tuple[synthetic_mri.SyntheticMRIRecord, ...]:
    return sample_synthetic_cohort(
        config.n_subjects, config.sessions_per_subject, seed=config.seed,
        ad_fraction=config.ad_fraction, atrophy=config.atrophy, n_qc_fail=config.n_qc_fail,
        region_dropout=config.region_dropout, weight_jitter=config.weight_jitter,
        location_mm=config.location_mm, asymmetry_sd=config.asymmetry_sd,
        cn_decoy=config.cn_decoy)


def synthetic_cohort_on_disk(
    config: MRIConfig, *, progress: ProgressCallback | None = None
) -> MRICohort:
    """The synthetic cohort of ``config`` generated session by session into
    :func:`mri_cohort_cache_dir` (once) and read back lazily.

    The folder name holds a hash of the sampled records, the grid and the generator's
    source, so any change to the cohort or to the generator makes a new folder; an
    interrupted generation resumes (:func:`~wslbench.data.caps.write_synthetic_caps`).
    """
    records = _sample(config)
    grid = mni_grid(config.grid)
    digest = hashlib.sha256()
    digest.update(repr((grid.voxel_size, records)).encode())
    digest.update(Path(synthetic_mri.__file__).read_bytes())
    folder = mri_cohort_cache_dir() / (
        f"{config.grid}-{config.n_subjects}x{config.sessions_per_subject}-seed{config.seed}-"
        f"{digest.hexdigest()[:16]}")
    if not (folder / COHORT_TSV_NAME).is_file():
        _log.info("generating %d synthetic sessions at %s into %s", len(records),
                  "×".join(map(str, grid.shape)), folder)
        try:
            write_synthetic_caps(records, folder, grid.voxel_size, progress=progress)
        except InvalidInputError:
            if not (folder / COHORT_TSV_NAME).is_file():  # not another process finishing first
                raise
    return read_caps(folder)


def _atlas(config: MRIConfig, cohort: SyntheticCohort | MRICohort) -> Parcellation:
    shape = tuple(cohort.volumes.shape[2:])
    if config.atlas_path is not None:
        return load_atlas(config.atlas_path, shape, cohort.affine)
    if isinstance(cohort, SyntheticCohort):
        return default_parcellation(grid=config.grid)
    if cohort.grid is None:
        raise ConfigError(
            f"the maps of {cohort.source} lie on a {'×'.join(map(str, shape))} grid that is not "
            "an MNI grid of wslbench (SPM's bounding box at an isotropic voxel size, e.g. "
            "121×145×121 at 1.5 mm); pass atlas_path, a label NIfTI (e.g. AAL2) on the maps' "
            "grid, for the ROI similarity (2.4)")
    return default_parcellation(grid=cohort.grid.voxel_size)


def make_mri_data(config: MRIConfig, *, progress: ProgressCallback | None = None) -> MRIData:
    """Cohort (module docstring) → quality check (2.3.1) → subject-level CV split (2.2.3).

    Args:
        config: the experiment's configuration (``data_dir``, ``atlas_path`` and
            ``cohort_on_disk`` choose the source).
        progress: called after each generated session of an on-disk synthetic cohort.

    Raises:
        DataNotFoundError, DataFormatError: a missing or malformed ``data_dir`` or atlas.
        ConfigError: maps on an unknown grid without ``atlas_path``.
        InvalidInputError: an atlas on another grid than the maps.
    """
    full: SyntheticCohort | MRICohort
    if config.data_dir is not None:
        full = read_caps(config.data_dir)
    elif config.cohort_on_disk:
        full = synthetic_cohort_on_disk(config, progress=progress)
    else:
        full = make_synthetic_cohort(config.n_subjects, config.sessions_per_subject,
                                     grid=config.grid, seed=config.seed,
                                     ad_fraction=config.ad_fraction, atrophy=config.atrophy,
                                     n_qc_fail=config.n_qc_fail,
                                     region_dropout=config.region_dropout,
                                     weight_jitter=config.weight_jitter,
                                     location_mm=config.location_mm,
                                     asymmetry_sd=config.asymmetry_sd,
                                     cn_decoy=config.cn_decoy)
    atlas = _atlas(config, full)
    _, report = quality_check(full.volumes, keys=full.keys)
    rejected = [(r.participant_id, r.session_id, float(r.max_value)) for r in report.rejected]
    cohort = full.select(list(report.kept))
    splits = subject_level_cv(cohort.participant_ids, cohort.labels, cohort.ages, cohort.sexes,
                              n_splits=config.n_splits, random_state=2,
                              test_fraction=config.test_fraction, age_bins=config.age_bins)
    return MRIData(cohort, rejected, splits.folds, splits.balance, atlas)
