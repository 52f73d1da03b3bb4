"""Brain parcellations: a default symmetric one from the GM template, and user label maps.

The ROI-based mask similarity of Thibeau-Sutre et al. (2020), section 2.4, sums a
mask over the 120 regions of the AAL2 atlas. No labelled volume atlas ships offline
(DESIGN §7), so :func:`default_parcellation` builds a stand-in deterministically from
nilearn's GM template:

1. the template on the MNI grid is symmetrised (mean of it and its left/right mirror)
   and thresholded at GM > 0.2, excluding the midline plane x = 0;
2. k-means (``n_regions / 2`` clusters, seeded) on the MNI mm coordinates of the right
   hemisphere's GM voxels on the 3 mm grid gives the region centres (so every grid
   gets the same regions); centres are ordered by (z, y, x);
3. each GM voxel of the right hemisphere takes its nearest centre, and the left
   hemisphere is the exact mirror image.

Labels follow AAL's convention: region ``k`` (1-based) is ``2k − 1`` on the left
(name ``"L_kkk"``) and ``2k`` on the right (``"R_kkk"``); 0 is background. When a
centre falls inside one of the known AD atrophy regions of
:mod:`wslbench.data.synthetic_mri`, its name gets that region's name appended
(``"L_007_hippocampus"``). The parcellation is cached in memory per grid.

:func:`load_parcellation` reads any integer label NIfTI (AAL2 when the user has it)
and can check that it lies on the grid of the maps it will be applied to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from wslbench.data.nifti import load_nifti, validate_affine
from wslbench.data.synthetic_mri import (
    ATROPHY_REGIONS,
    GRID_VOXEL_SIZES,
    MNIGrid,
    gm_template,
    mni_grid,
)
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "DEFAULT_N_REGIONS",
    "GM_THRESHOLD",
    "Parcellation",
    "default_parcellation",
    "load_parcellation",
    "check_parcellation_grid",
]

#: Number of regions of AAL2 used by the paper (section 2.4).
DEFAULT_N_REGIONS: int = 120
#: GM probability above which a template voxel is parcellated.
GM_THRESHOLD: float = 0.2
_CENTRE_GRID = GRID_VOXEL_SIZES["smoke"]


@dataclass(frozen=True)
class Parcellation:
    """A label volume with region names.

    Attributes:
        labels: ``(D, H, W)`` int32 region labels, 0 = background (read-only for the
            cached default).
        ids: label value of each region, increasing.
        names: name of each region, aligned with ``ids``.
        affine: ``(4, 4)`` voxel-to-mm matrix.
    """

    labels: np.ndarray
    ids: tuple[int, ...]
    names: tuple[str, ...]
    affine: np.ndarray

    @property
    def n_regions(self) -> int:
        """Number of regions (background excluded)."""
        return len(self.ids)

    def mask(self, name: str) -> np.ndarray:
        """``(D, H, W)`` bool mask of the region called ``name``.

        Raises:
            InvalidInputError: unknown name.
        """
        if name not in self.names:
            raise InvalidInputError(f"no region named {name!r}; expected one of {self.names[:6]}…")
        return self.labels == self.ids[self.names.index(name)]


def _symmetric_mask(voxel_size: float) -> tuple[MNIGrid, np.ndarray]:
    g = mni_grid(voxel_size)
    t = gm_template(voxel_size)
    mask = 0.5 * (t + t[::-1]) > GM_THRESHOLD
    mask[g.shape[0] // 2] = False
    return g, mask


def _right_xyz(g: MNIGrid, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices and MNI mm of the masked voxels with x > 0 (array axis 0 < centre)."""
    half = mask.copy()
    half[g.shape[0] // 2:] = False
    idx = np.argwhere(half)
    x, y, z = g.axes_mm()
    return idx, np.stack([x[idx[:, 0]], y[idx[:, 1]], z[idx[:, 2]]], axis=1)


@lru_cache(maxsize=8)
def _centres(n_half: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    g, mask = _symmetric_mask(_CENTRE_GRID)
    _, xyz = _right_xyz(g, mask)
    km = KMeans(n_clusters=n_half, n_init=1, random_state=seed).fit(xyz)
    c = km.cluster_centers_
    return c[np.lexsort((c[:, 0], c[:, 1], c[:, 2]))]


def _names(centres: np.ndarray) -> tuple[str, ...]:
    names = []
    for k, (x, y, z) in enumerate(centres, start=1):
        for side, sx in (("L", -x), ("R", x)):
            inside = [
                r.name[2:] for r in ATROPHY_REGIONS if r.hemisphere == side and sum(
                    ((v - c) / rad) ** 2 for v, c, rad in zip((sx, y, z), r.centre, r.radii)) <= 1
            ]
            names.append(f"{side}_{k:03d}" + (f"_{inside[0]}" if inside else ""))
    return tuple(names)


@lru_cache(maxsize=8)
def _default(voxel_size: float, n_regions: int, seed: int) -> Parcellation:
    centres = _centres(n_regions // 2, seed)
    g, mask = _symmetric_mask(voxel_size)
    idx, xyz = _right_xyz(g, mask)
    labels = np.zeros(g.shape, np.int32)
    nearest = cKDTree(centres).query(xyz)[1]
    labels[idx[:, 0], idx[:, 1], idx[:, 2]] = 2 * (nearest + 1)
    left = labels[::-1]
    labels = np.where(left > 0, left - 1, labels).astype(np.int32)
    labels.flags.writeable = False
    return Parcellation(labels, tuple(range(1, n_regions + 1)), _names(centres), g.affine)


def default_parcellation(
    grid: str | float = "smoke", n_regions: int = DEFAULT_N_REGIONS, seed: int = 0
) -> Parcellation:
    """The symmetric template parcellation (module docstring), cached per grid.

    Args:
        grid: ``"paper"``, ``"smoke"`` or a voxel size in mm (see
            :func:`wslbench.data.synthetic_mri.mni_grid`).
        n_regions: even number of regions, in [2, 400] (AAL2 has 120).
        seed: k-means seed.

    Returns:
        :class:`Parcellation` with labels 1…n_regions (odd left, even right). At coarse
        grids a small region may hold no voxel.

    Raises:
        InvalidInputError: odd or out-of-range ``n_regions``, or a bad grid.
    """
    if (isinstance(n_regions, bool) or not isinstance(n_regions, int) or n_regions % 2
            or not 2 <= n_regions <= 400):
        raise InvalidInputError(
            f"n_regions must be an even int in [2, 400] (mirrored hemispheres), got {n_regions!r}"
        )
    return _default(mni_grid(grid).voxel_size, n_regions, int(seed))


def check_parcellation_grid(
    parcellation: Parcellation, shape: Sequence[int], affine: np.ndarray, *, atol: float = 1e-3
) -> None:
    """Check that a parcellation lies on the grid of the maps it will be applied to.

    Args:
        parcellation: the label volume.
        shape: ``(D, H, W)`` of the maps.
        affine: ``(4, 4)`` affine of the maps.
        atol: tolerance (mm) on affine entries.

    Raises:
        InvalidInputError: different shape or affine (resample the atlas to the maps first).
    """
    shape = tuple(int(s) for s in shape)
    affine = validate_affine(affine, "maps' affine")
    if parcellation.labels.shape != shape:
        raise InvalidInputError(
            f"parcellation grid {parcellation.labels.shape} does not match the maps' grid "
            f"{shape}; expected a label volume on the same grid (resample it first)"
        )
    if not np.allclose(parcellation.affine, affine, atol=atol):
        raise InvalidInputError(
            f"parcellation affine\n{np.round(parcellation.affine, 3)}\ndoes not match the maps' "
            f"affine\n{np.round(affine, 3)}\nexpected the same voxel-to-mm mapping"
        )


def _read_names(path: Path) -> dict[int, str]:
    if not path.is_file():
        raise DataNotFoundError(f"region names TSV {path} does not exist; expected a label/name TSV")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"cannot read {path} as a tab-separated table: {exc}; expected a UTF-8 TSV with "
            "a label and a name column"
        ) from exc
    id_col = next((c for c in ("label", "index", "roi_value") if c in frame.columns), None)
    name_col = next((c for c in ("name", "roi_name") if c in frame.columns), None)
    if id_col is None or name_col is None:
        raise DataFormatError(
            f"{path} has columns {list(frame.columns)}; expected a label column ('label', "
            "'index' or 'roi_value') and a name column ('name' or 'roi_name')"
        )
    try:
        return {int(v): str(n) for v, n in zip(frame[id_col], frame[name_col])}
    except ValueError as exc:
        raise DataFormatError(f"{path}: column {id_col!r} must hold integers ({exc})") from exc


def load_parcellation(
    path: str | Path,
    names_tsv: str | Path | None = None,
    *,
    shape: Sequence[int] | None = None,
    affine: np.ndarray | None = None,
) -> Parcellation:
    """Read a user label NIfTI (e.g. AAL2) as a :class:`Parcellation`.

    Args:
        path: integer label volume (0 = background).
        names_tsv: optional TSV with a label column (``label``/``index``/``roi_value``)
            and a name column (``name``/``roi_name``); without it regions are named
            ``"label_<id>"``. Labels absent from the TSV are an error; TSV rows whose label
            is absent from the volume are ignored.
        shape: ``(D, H, W)`` of the maps the atlas will be applied to (with ``affine``).
        affine: their affine; both or neither must be given.

    Raises:
        DataNotFoundError, DataFormatError: unreadable files, non-integer or negative
            labels, an empty atlas, or labels without a name.
        InvalidInputError: only one of shape/affine, or a grid mismatch.
    """
    if (shape is None) != (affine is None):
        raise InvalidInputError("pass both shape and affine of the maps, or neither")
    vol = load_nifti(path)
    data = vol.data
    if not np.all(data == np.round(data)) or data.min() < 0:
        raise DataFormatError(
            f"{path} is not a label volume; expected non-negative integer labels"
        )
    labels = data.astype(np.int32)
    ids = tuple(int(v) for v in np.unique(labels) if v != 0)
    if not ids:
        raise DataFormatError(f"{path} holds no region (all voxels are 0); expected at least one label > 0")
    if names_tsv is None:
        names = tuple(f"label_{i}" for i in ids)
    else:
        table = _read_names(Path(names_tsv).expanduser())
        unnamed = [i for i in ids if i not in table]
        if unnamed:
            raise DataFormatError(
                f"{names_tsv} names no region for label(s) {unnamed[:10]} found in {path}"
            )
        names = tuple(table[i] for i in ids)
    parc = Parcellation(labels, ids, names, vol.affine)
    if shape is not None:
        check_parcellation_grid(parc, shape, affine)  # type: ignore[arg-type]
    return parc
