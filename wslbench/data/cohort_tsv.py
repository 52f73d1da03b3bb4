"""Participants/sessions TSV files (ClinicaDL layout) and the gray-matter quality check.

A cohort is one tab-separated file with one row per (participant, session), as
ClinicaDL's data TSVs (DESIGN §8), plus the columns this workbench needs:

==================  ===========================================================
``participant_id``  BIDS subject label, ``sub-…`` (required)
``session_id``      BIDS session label, ``ses-…`` (required)
``diagnosis``       one of the allowed labels, default ``{"CN", "AD"}`` (required)
``path``            the session's gray-matter map (NIfTI); relative paths are
                    resolved against the TSV's folder (required)
``age``             age at the session in years (optional column, may be empty)
``sex``             ``M`` or ``F`` (optional column, may be empty)
==================  ===========================================================

Other columns are allowed and ignored. :func:`load_cohort_tsv` returns a tuple of
frozen :class:`CohortRecord` (chosen over a DataFrame: typed, immutable, and what the
quality check and the data sets consume; ``pandas.DataFrame(map(dataclasses.asdict,
records))`` gives a frame). :func:`write_cohort_tsv` writes the same layout back.

:func:`quality_check` is step 1 of the quality check of Thibeau-Sutre et al. (2020),
section 2.3.1: maps are sorted by their maximal value and those whose maximum is
below 0.95 are rejected (8 ADNI sessions were removed that way). Step 2 (removing a
session that raised the loss while training a group mask) needs a trained mask and is
not automated.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wslbench.data.nifti import load_nifti
from wslbench.data.volume_store import VolumeStore, volume_maxima
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "COHORT_COLUMNS",
    "REQUIRED_COHORT_COLUMNS",
    "DEFAULT_DIAGNOSES",
    "QC_THRESHOLD",
    "CohortRecord",
    "QCRejection",
    "QualityReport",
    "load_cohort_tsv",
    "write_cohort_tsv",
    "quality_check",
]

#: Column order :func:`write_cohort_tsv` writes.
COHORT_COLUMNS: tuple[str, ...] = (
    "participant_id", "session_id", "diagnosis", "age", "sex", "path",
)
#: Columns :func:`load_cohort_tsv` requires (``age`` and ``sex`` are optional).
REQUIRED_COHORT_COLUMNS: tuple[str, ...] = ("participant_id", "session_id", "diagnosis", "path")
#: Diagnosis labels of the paper's task (section 2.1): cognitively normal vs Alzheimer's.
DEFAULT_DIAGNOSES: frozenset[str] = frozenset({"CN", "AD"})
#: Minimal maximum of an accepted gray-matter map (section 2.3.1, step 1).
QC_THRESHOLD: float = 0.95


@dataclass(frozen=True)
class CohortRecord:
    """One (participant, session) row of a cohort TSV.

    Attributes:
        participant_id: ``sub-…`` label.
        session_id: ``ses-…`` label.
        diagnosis: diagnosis label (e.g. ``"CN"``, ``"AD"``).
        age: age in years at the session, or ``None`` when not given.
        sex: ``"M"``, ``"F"`` or ``None`` when not given.
        path: absolute path of the gray-matter map.
    """

    participant_id: str
    session_id: str
    diagnosis: str
    age: float | None
    sex: str | None
    path: Path


@dataclass(frozen=True)
class QCRejection:
    """One map rejected by :func:`quality_check`.

    Attributes:
        index: position in the input sequence / batch.
        participant_id: its participant (``None`` for an unlabelled batch).
        session_id: its session (``None`` for an unlabelled batch).
        max_value: the map's maximal value (below the threshold).
    """

    index: int
    participant_id: str | None
    session_id: str | None
    max_value: float


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :func:`quality_check`.

    Attributes:
        threshold: the minimal accepted maximum.
        maxima: ``(N,)`` maximal value of every map, in input order.
        kept: input indices of the accepted maps, in input order.
        rejected: the rejected maps, sorted by increasing maximum (as in the paper).
    """

    threshold: float
    maxima: np.ndarray
    kept: tuple[int, ...]
    rejected: tuple[QCRejection, ...]

    def summary(self) -> str:
        """One line per rejected map, e.g. ``"sub-01 ses-M00: max 0.812 < 0.95"``."""
        head = f"{len(self.rejected)} of {len(self.maxima)} map(s) rejected (max < {self.threshold})"
        lines = [
            f"{r.participant_id or f'#{r.index}'} {r.session_id or ''}: max {r.max_value:.3f}"
            for r in self.rejected
        ]
        return "\n".join([head, *lines])


def _cell_error(source: Path, row: int, column: str, value: str, expected: str) -> DataFormatError:
    return DataFormatError(
        f"{source}, data row {row}, column {column!r}: got {value!r}; expected {expected}"
    )


def _parse_row(
    row: dict[str, str], number: int, source: Path, allowed: frozenset[str]
) -> CohortRecord:
    pid, sid, diag = row["participant_id"], row["session_id"], row["diagnosis"]
    if not pid.startswith("sub-") or len(pid) == 4:
        raise _cell_error(source, number, "participant_id", pid, "a BIDS label 'sub-<label>'")
    if not sid.startswith("ses-") or len(sid) == 4:
        raise _cell_error(source, number, "session_id", sid, "a BIDS label 'ses-<label>'")
    if diag not in allowed:
        raise _cell_error(source, number, "diagnosis", diag, f"one of {sorted(allowed)}")
    age: float | None = None
    if row.get("age", ""):
        try:
            age = float(row["age"])
        except ValueError:
            age = math.nan
        if not (math.isfinite(age) and 0.0 < age < 150.0):
            raise _cell_error(source, number, "age", row["age"], "a number of years in (0, 150)")
    sex: str | None = None
    if row.get("sex", ""):
        sex = row["sex"].upper()
        if sex not in ("M", "F"):
            raise _cell_error(source, number, "sex", row["sex"], "'M' or 'F'")
    if not row["path"]:
        raise _cell_error(source, number, "path", "", "the gray-matter map's file path")
    path = Path(row["path"]).expanduser()
    if not path.is_absolute():
        path = source.parent / path
    return CohortRecord(pid, sid, diag, age, sex, path)


def load_cohort_tsv(
    path: str | Path,
    *,
    diagnoses: Collection[str] = DEFAULT_DIAGNOSES,
    check_files: bool = True,
    map_path: Callable[[str, str], Path] | None = None,
) -> tuple[CohortRecord, ...]:
    """Read and validate a cohort TSV (layout in the module docstring).

    Args:
        path: the ``.tsv`` file.
        diagnoses: allowed diagnosis labels (default ``{"CN", "AD"}``).
        check_files: require every ``path`` to be an existing file.
        map_path: for a TSV without a ``path`` column (ClinicaDL's TSVs locate the maps
            by the CAPS layout): ``map_path(participant_id, session_id)`` gives each
            session's map. Without it the ``path`` column is required.

    Returns:
        One :class:`CohortRecord` per row, in file order, with absolute paths.

    Raises:
        DataNotFoundError: the TSV is missing, or (with ``check_files``) map files are.
        DataFormatError: unreadable or empty TSV, missing required columns, duplicate
            (participant, session) pairs, an empty or malformed cell (labels without the
            ``sub-``/``ses-`` prefix, non-numeric age, sex not M/F) or an unknown diagnosis.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise DataNotFoundError(f"cohort TSV {source} does not exist; expected a .tsv file")
    try:
        frame = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"cannot read {source} as a tab-separated table: {exc}; expected a UTF-8 TSV "
            f"with the header {list(COHORT_COLUMNS)}"
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    required = [c for c in REQUIRED_COHORT_COLUMNS if c != "path" or map_path is None]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{source} lacks column(s) {missing}; expected tab-separated columns "
            f"{[c for c in COHORT_COLUMNS if c in required or c in ('age', 'sex')]} (age and sex "
            f"optional here), found {list(frame.columns)}"
        )
    if frame.empty:
        raise DataFormatError(f"{source} has a header but no rows; expected one row per session")
    if "path" not in frame.columns and map_path is not None:
        frame["path"] = [str(map_path(str(p).strip(), str(s).strip()))
                         for p, s in zip(frame["participant_id"], frame["session_id"])]
    allowed = frozenset(diagnoses)
    records = tuple(
        _parse_row({k: str(v).strip() for k, v in row.items()}, i + 1, source, allowed)
        for i, row in enumerate(frame.to_dict("records"))
    )
    seen: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records, start=1):
        key = (rec.participant_id, rec.session_id)
        if key in seen:
            raise DataFormatError(
                f"{source}: ({key[0]}, {key[1]}) appears on data rows {seen[key]} and {i}; "
                "expected each (participant_id, session_id) pair once"
            )
        seen[key] = i
    if check_files:
        absent = [str(r.path) for r in records if not r.path.is_file()]
        if absent:
            raise DataNotFoundError(
                f"{source}: {len(absent)} map file(s) do not exist, e.g. {absent[:3]}; "
                "expected paths to existing NIfTI files (relative to the TSV's folder)"
            )
    return records


def write_cohort_tsv(
    records: Sequence[CohortRecord], path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write records in the layout :func:`load_cohort_tsv` reads, atomically.

    Map paths under the TSV's folder are written relative to it (so the folder can be
    moved); others stay absolute. Missing age/sex are written as empty cells.

    Args:
        records: the rows to write (at least one).
        path: target ``.tsv`` file; its folder must exist.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        InvalidInputError: no records, or the target exists without ``overwrite``.
        DataNotFoundError: the target folder does not exist.
    """
    target = Path(path).expanduser()
    if not records:
        raise InvalidInputError("write_cohort_tsv needs at least one record")
    if not target.parent.is_dir():
        raise DataNotFoundError(f"folder {target.parent} does not exist; create it first")
    if target.exists() and not overwrite:
        raise InvalidInputError(f"{target} already exists; pass overwrite=True to replace it")
    base = target.parent.resolve()
    rows = []
    for r in records:
        p = Path(r.path)
        rel = p.resolve().relative_to(base) if p.resolve().is_relative_to(base) else p
        rows.append({
            "participant_id": r.participant_id, "session_id": r.session_id,
            "diagnosis": r.diagnosis, "age": "" if r.age is None else f"{r.age:.2f}",
            "sex": r.sex or "", "path": rel.as_posix(),
        })
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        pd.DataFrame(rows, columns=list(COHORT_COLUMNS)).to_csv(tmp, sep="\t", index=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def quality_check(
    maps: Sequence[CohortRecord] | np.ndarray | torch.Tensor | VolumeStore,
    threshold: float = QC_THRESHOLD,
    *,
    keys: Sequence[tuple[str, str]] | None = None,
) -> tuple[tuple[CohortRecord, ...] | np.ndarray | torch.Tensor | VolumeStore, QualityReport]:
    """Reject gray-matter maps whose maximal value is below ``threshold`` (section 2.3.1).

    Args:
        maps: cohort records (each map is read from its ``path``), a batch of maps
            ``(N, D, H, W)`` / ``(N, 1, D, H, W)`` (NumPy array or torch tensor), or a
            :class:`~wslbench.data.volume_store.VolumeStore` (read batch by batch; the
            kept maps are returned as a subset store, nothing held in memory).
        threshold: minimal accepted maximum (0.95 in the paper).
        keys: ``(participant_id, session_id)`` of every map of a batch, for the report
            (records carry their own; ``SyntheticCohort.keys`` gives them for a cohort).

    Returns:
        ``(kept, report)``: the accepted records (a tuple) or the accepted maps (the
        batch indexed by ``report.kept``), and the :class:`QualityReport`.

    Raises:
        InvalidInputError: empty input, a batch with fewer than 4 axes, ``keys`` of the
            wrong length or given with records, or a non-finite threshold.
        DataNotFoundError, DataFormatError: a record's map cannot be read.
    """
    if not math.isfinite(float(threshold)):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
    if isinstance(maps, VolumeStore | np.ndarray | torch.Tensor):
        if isinstance(maps, VolumeStore):
            maxima = volume_maxima(maps)
        elif maps.ndim < 4 or maps.shape[0] == 0:
            raise InvalidInputError(
                f"maps of shape {tuple(maps.shape)}: expected a non-empty batch "
                "(N, D, H, W) or (N, 1, D, H, W)"
            )
        else:
            flat = maps.reshape(maps.shape[0], -1)
            maxima = (flat.amax(dim=1).cpu().numpy() if isinstance(flat, torch.Tensor)
                      else flat.max(axis=1)).astype(np.float64)
        if keys is not None and len(keys) != len(maxima):
            raise InvalidInputError(f"got {len(keys)} keys for {len(maxima)} maps; expected one each")
        labels = list(keys) if keys is not None else [(None, None)] * len(maxima)
    else:
        if len(maps) == 0:
            raise InvalidInputError("quality_check needs at least one map")
        if keys is not None:
            raise InvalidInputError("keys are only for a batch of maps; records carry their ids")
        maxima = np.array([float(load_nifti(r.path).data.max()) for r in maps])
        labels = [(r.participant_id, r.session_id) for r in maps]
    keep = maxima >= threshold
    order = np.argsort(maxima, kind="stable")
    rejected = tuple(
        QCRejection(int(i), labels[i][0], labels[i][1], float(maxima[i]))
        for i in order if not keep[i]
    )
    kept_idx = tuple(int(i) for i in np.flatnonzero(keep))
    report = QualityReport(float(threshold), maxima, kept_idx, rejected)
    if isinstance(maps, VolumeStore):
        if not kept_idx:
            raise InvalidInputError(
                f"all {len(maxima)} maps fail the quality check (maximum below {threshold}, "
                "section 2.3.1); expected gray-matter probability maps reaching about 1")
        return maps.subset(list(kept_idx)), report
    if isinstance(maps, np.ndarray | torch.Tensor):
        return maps[list(kept_idx)], report
    return tuple(maps[i] for i in kept_idx), report
