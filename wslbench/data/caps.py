"""CAPS-like cohort folders (ClinicaDL conventions), read lazily, and written session by session.

Thibeau-Sutre et al. (2020), section 2.1: the gray-matter (GM) maps come from Clinica's
``t1-volume`` pipeline, stored in a CAPS folder (ClinicaDL's layout), and the cohort is
described by TSV files with ``participant_id``, ``session_id``, ``diagnosis``, ``age`` and
``sex`` columns. :func:`read_caps` reads such a folder::

    data_dir/participants.tsv       participant_id  session_id  diagnosis  age  sex  [path]
    data_dir/subjects/<p>/<s>/t1/spm/segmentation/normalized_space/
        <p>_<s>_T1w_segm-graymatter_space-Ixi549Space_modulated-off_probability.nii.gz
        <p>_<s>_desc-atrophy_map.nii.gz      (optional: ground truth of synthetic cohorts)

- ``diagnosis`` must be ``AD`` or ``CN`` (label 1 / 0); ``age`` and ``sex`` are required
  (the subject-level split is age- and sex-matched, 2.2.1);
- a ``path`` column, when present, names each map (relative to the folder), as
  :func:`~wslbench.data.cohort_tsv.load_cohort_tsv` reads it; without it each map is
  found by the CAPS layout above (``modulated-off`` preferred, then any
  ``modulated-*``, ``.nii.gz`` or ``.nii``);
- every map must exist and all must lie on one grid (checked from the headers, no voxel
  read); the maps are then read on demand through a
  :class:`~wslbench.data.volume_store.NiftiVolumeStore`;
- the ground-truth atrophy maps are read the same way when every session has one,
  else :attr:`MRICohort.atrophy_maps` is ``None`` (real data: no truth).

:func:`write_synthetic_caps` renders synthetic records (:mod:`wslbench.data.synthetic_mri`)
one session at a time into this layout, so a cohort larger than memory (the paper's
666 subjects × 3 sessions at 121×145×121) is built with one volume resident.
:func:`load_atlas` reads a user label atlas (AAL2-style NIfTI, section 2.4) and checks
it against the maps' grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wslbench.data.cohort_tsv import (
    CohortRecord,
    load_cohort_tsv,
    write_cohort_tsv,
)
from wslbench.data.nifti import save_nifti
from wslbench.data.parcellation import Parcellation, check_parcellation_grid, load_parcellation
from wslbench.data.synthetic_mri import (
    COHORT_TSV_NAME,
    MNIGrid,
    SyntheticMRIRecord,
    mni_grid,
    render_synthetic_mri,
)
from wslbench.data.volume_store import IndexLike, NiftiVolumeStore, VolumeStore, select_volumes
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError
from wslbench.progress import ProgressCallback, report

__all__ = [
    "CAPS_MAP_FOLDER",
    "MRICohort",
    "caps_map_path",
    "atrophy_map_path",
    "read_caps",
    "write_synthetic_caps",
    "mni_grid_of",
    "load_atlas",
]

_log = logging.getLogger("wslbench")

#: Folder of a session's GM map in a CAPS tree (Clinica ``t1-volume``), under subjects/<p>/<s>/.
CAPS_MAP_FOLDER: tuple[str, ...] = ("t1", "spm", "segmentation", "normalized_space")
_GM_STEM = "{p}_{s}_T1w_segm-graymatter_space-Ixi549Space_modulated-{m}_probability"
_ATROPHY_NAME = "{p}_{s}_desc-atrophy_map.nii.gz"


@dataclass(frozen=True)
class MRICohort:
    """Sessions of an MRI cohort whose maps may stay on disk (the interface of
    :class:`~wslbench.data.synthetic_mri.SyntheticCohort` the MRI experiment uses).

    Attributes:
        volumes: ``(N, 1, D, H, W)`` GM maps: a tensor or a lazy
            :class:`~wslbench.data.volume_store.VolumeStore`.
        atrophy_maps: ground-truth fraction of GM removed, same kind and shape, or ``None``
            (real data).
        labels: ``(N,)`` int64, AD = 1, CN = 0.
        participant_ids, session_ids: labels of each session.
        ages: ``(N,)`` ages at the sessions (years).
        sexes: ``"M"``/``"F"`` of each session.
        affine: ``(4, 4)`` voxel-to-mm matrix of every map.
        source: the folder the cohort was read from (``None`` in memory).
    """

    volumes: torch.Tensor | VolumeStore
    atrophy_maps: torch.Tensor | VolumeStore | None
    labels: torch.Tensor
    participant_ids: tuple[str, ...]
    session_ids: tuple[str, ...]
    ages: np.ndarray
    sexes: tuple[str, ...]
    affine: np.ndarray
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.participant_ids)

    @property
    def keys(self) -> tuple[tuple[str, str], ...]:
        """``(participant_id, session_id)`` of each session (for ``quality_check``)."""
        return tuple(zip(self.participant_ids, self.session_ids))

    @property
    def grid(self) -> MNIGrid | None:
        """The maps' MNI grid (:func:`mni_grid_of`), ``None`` when they lie on another grid."""
        return mni_grid_of(self.volumes.shape[2:], self.affine)

    def select(self, indices: IndexLike) -> MRICohort:
        """The sessions at ``indices``, in that order (a lazy store stays lazy)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return MRICohort(
            select_volumes(self.volumes, idx),
            None if self.atrophy_maps is None else select_volumes(self.atrophy_maps, idx),
            self.labels[torch.from_numpy(idx)],
            tuple(self.participant_ids[i] for i in idx),
            tuple(self.session_ids[i] for i in idx),
            np.asarray(self.ages)[idx],
            tuple(self.sexes[i] for i in idx),
            self.affine,
            self.source,
        )


def _session_folder(root: Path, participant: str, session: str) -> Path:
    return root.joinpath("subjects", participant, session, *CAPS_MAP_FOLDER)


def caps_map_path(root: str | Path, participant: str, session: str) -> Path:
    """The GM map of a session in a CAPS tree: ``modulated-off`` if present, else the only
    other ``modulated-*`` map (``.nii.gz`` or ``.nii``), else the canonical
    ``modulated-off .nii.gz`` name (which then does not exist)."""
    folder = _session_folder(Path(root), participant, session)
    for modulation in ("off", "on"):
        for suffix in (".nii.gz", ".nii"):
            path = folder / (_GM_STEM.format(p=participant, s=session, m=modulation) + suffix)
            if path.is_file():
                return path
    return folder / (_GM_STEM.format(p=participant, s=session, m="off") + ".nii.gz")


def atrophy_map_path(map_path: Path, participant: str, session: str) -> Path:
    """The ground-truth atrophy map beside a session's GM map (synthetic cohorts)."""
    return map_path.parent / _ATROPHY_NAME.format(p=participant, s=session)


def read_caps(data_dir: str | Path, *, cache_size: int = 0) -> MRICohort:
    """Read a CAPS-like folder lazily (layout in the module docstring).

    Args:
        data_dir: the folder holding ``participants.tsv`` and ``subjects/``.
        cache_size: GM maps kept in memory between accesses (0: each access reads files).

    Returns:
        :class:`MRICohort` whose ``volumes`` (and ``atrophy_maps`` when every session has
        one) are :class:`~wslbench.data.volume_store.NiftiVolumeStore` s.

    Raises:
        DataNotFoundError: the folder, its TSV or a map is missing.
        DataFormatError: a malformed TSV (missing columns, diagnosis other than AD/CN,
            empty age or sex, bad labels), or maps that are not 3-D NIfTI on one grid.
    """
    root = Path(data_dir).expanduser()
    expected = (f"expected a CAPS-like folder with {COHORT_TSV_NAME} (columns participant_id, "
                "session_id, diagnosis, age, sex) and subjects/<participant>/<session>/"
                f"{'/'.join(CAPS_MAP_FOLDER)}/<participant>_<session>_T1w_segm-graymatter_"
                "space-Ixi549Space_modulated-off_probability.nii.gz")
    if not root.is_dir():
        raise DataNotFoundError(f"MRI data_dir {root} does not exist or is not a folder; {expected}")
    tsv = root / COHORT_TSV_NAME
    if not tsv.is_file():
        raise DataNotFoundError(f"{tsv} does not exist; {expected}")
    records = load_cohort_tsv(tsv, map_path=lambda p, s: caps_map_path(root, p, s))
    _require_demographics(tsv, records)
    store = NiftiVolumeStore([r.path for r in records], cache_size=cache_size)
    truth_paths = [atrophy_map_path(r.path, r.participant_id, r.session_id) for r in records]
    present = sum(p.is_file() for p in truth_paths)
    truth: NiftiVolumeStore | None = None
    if present == len(records):
        truth = NiftiVolumeStore(truth_paths, shape=store.grid_shape, affine=store.affine)
    elif present:
        _log.warning("%s: %d of %d sessions have a ground-truth atrophy map; ignoring them "
                     "(truth-based metrics need every session's)", root, present, len(records))
    return MRICohort(
        store, truth,
        torch.tensor([int(r.diagnosis == "AD") for r in records], dtype=torch.int64),
        tuple(r.participant_id for r in records), tuple(r.session_id for r in records),
        np.array([r.age for r in records], dtype=np.float64),
        tuple(r.sex for r in records),  # type: ignore[misc]
        store.affine, root,
    )


def _require_demographics(tsv: Path, records: Sequence[CohortRecord]) -> None:
    for column in ("age", "sex"):
        empty = [f"{r.participant_id} {r.session_id}" for r in records
                 if getattr(r, column) is None]
        if empty:
            raise DataFormatError(
                f"{tsv}: column {column!r} is missing or empty for {len(empty)} session(s), "
                f"e.g. {empty[:3]}; expected an {column} for every session (the test set is "
                "age- and sex-matched, section 2.2.1)")


def write_synthetic_caps(
    records: Sequence[SyntheticMRIRecord],
    folder: str | Path,
    grid: str | float = "smoke",
    *,
    atrophy_maps: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """Render synthetic records one session at a time into a CAPS-like folder.

    Each session's GM map (and ground-truth atrophy map) is rendered with
    :func:`~wslbench.data.synthetic_mri.render_synthetic_mri`, written atomically, and
    dropped before the next, so one volume is resident at a time. Files already present
    are kept (an interrupted generation resumes where it stopped); the participants TSV
    is written last, so its presence marks a complete folder.

    Args:
        records: from :func:`~wslbench.data.synthetic_mri.sample_synthetic_cohort`.
        folder: target folder (created if needed).
        grid: ``"paper"``, ``"smoke"`` or a voxel size in mm.
        atrophy_maps: also write the ground-truth atrophy maps.
        progress: called as ``progress(done, total, {})`` after each session.

    Returns:
        The path of the participants TSV.

    Raises:
        InvalidInputError: no record, or the TSV already exists (a complete folder).
    """
    if not records:
        raise InvalidInputError("write_synthetic_caps needs at least one record")
    root = Path(folder).expanduser()
    tsv = root / COHORT_TSV_NAME
    if tsv.exists():
        raise InvalidInputError(f"{tsv} already exists: the folder holds a complete cohort; "
                                "pass another folder")
    g = mni_grid(grid)
    rows = []
    for done, rec in enumerate(records, start=1):
        p, s = rec.participant_id, rec.session_id
        folder_ = _session_folder(root, p, s)
        gm_path = folder_ / (_GM_STEM.format(p=p, s=s, m="off") + ".nii.gz")
        truth_path = atrophy_map_path(gm_path, p, s)
        if not gm_path.is_file() or (atrophy_maps and not truth_path.is_file()):
            folder_.mkdir(parents=True, exist_ok=True)
            gm, atrophy = render_synthetic_mri(rec, g.voxel_size)
            save_nifti(gm, g.affine, gm_path, overwrite=True)
            if atrophy_maps:
                save_nifti(atrophy, g.affine, truth_path, overwrite=True)
            del gm, atrophy
        rows.append(CohortRecord(p, s, rec.diagnosis, rec.age, rec.sex, gm_path))
        report(progress, done, len(records), {})
    return write_cohort_tsv(rows, tsv)


def mni_grid_of(shape: Sequence[int], affine: np.ndarray, *, atol: float = 1e-3) -> MNIGrid | None:
    """The MNI grid of :mod:`~wslbench.data.synthetic_mri` (SPM's bounding box at an isotropic
    voxel size in [1, 12] mm) with this shape and affine, or ``None``."""
    size = abs(float(np.asarray(affine)[0, 0]))
    if not 1.0 <= size <= 12.0:
        return None
    g = mni_grid(size)
    if tuple(int(v) for v in shape) == g.shape and np.allclose(affine, g.affine, atol=atol):
        return g
    return None


def load_atlas(path: str | Path, shape: Sequence[int], affine: np.ndarray,
               names_tsv: str | Path | None = None) -> Parcellation:
    """A user label atlas (AAL2-style integer NIfTI, section 2.4) checked against the maps'
    grid (:func:`~wslbench.data.parcellation.load_parcellation`).

    Raises:
        DataNotFoundError: the atlas file is missing.
        DataFormatError: not an integer label volume.
        InvalidInputError: the atlas lies on another grid (the message names the file).
    """
    parcellation = load_parcellation(path, names_tsv)
    try:
        check_parcellation_grid(parcellation, shape, affine)
    except InvalidInputError as exc:
        raise InvalidInputError(f"atlas {Path(path).expanduser()}: {exc}") from exc
    return parcellation

