"""NIfTI volume I/O: validated loading and atomic, never-silent saving (nibabel).

The gray-matter maps of Thibeau-Sutre et al. (2020), section 2.1, are NIfTI files in
MNI space (121×145×121 voxels at 1.5 mm from Clinica's ``t1-volume`` pipeline), and
ClinicaDL users expect every map a method produces back as NIfTI carrying the source
affine (DESIGN §8). :func:`load_nifti` reads one 3D volume as float32 with its affine
and a few header facts; :func:`save_nifti` writes one, to a temporary name in the
target folder and then renamed, so a crash never leaves a half-written file, and it
refuses to replace an existing file unless ``overwrite=True`` (DESIGN §4.6).

Accepted volumes are 3D, or 4D with a singleton last axis (one time point, as SPM
writes some maps). Voxel values and the affine must be finite and the affine's 3×3
part invertible; anything else raises a :mod:`wslbench.errors` error that names the
file and what was expected.
"""

from __future__ import annotations

import math
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "NIFTI_SUFFIXES",
    "NiftiVolume",
    "validate_affine",
    "load_nifti",
    "save_nifti",
]

#: File name endings :func:`save_nifti` writes (``.nii.gz`` is gzip-compressed).
NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
#: Most voxels :func:`load_nifti` reads (512³, 0.5 GiB as float32; the MNI grid at 1 mm
#: has 8.7 million). A header claiming more is refused before any allocation.
MAX_NIFTI_VOXELS = 512**3


@dataclass(frozen=True)
class NiftiVolume:
    """One 3D NIfTI volume.

    Attributes:
        data: ``(D, H, W)`` float32 voxel values (array axes = NIfTI i, j, k).
        affine: ``(4, 4)`` float64 voxel-to-world (mm) matrix.
        voxel_size: voxel side lengths in mm along the three array axes.
        orientation: nibabel axis codes of the affine, e.g. ``("L", "A", "S")``.
        source_dtype: on-disk data type name (e.g. ``"float32"``, ``"uint8"``).
        path: file the volume was read from (``None`` for an in-memory volume).
    """

    data: np.ndarray
    affine: np.ndarray
    voxel_size: tuple[float, float, float]
    orientation: tuple[str, str, str]
    source_dtype: str
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)`` grid size."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]


def validate_affine(affine: object, what: str = "affine") -> np.ndarray:
    """Check a voxel-to-world matrix and return it as a ``(4, 4)`` float64 array.

    Args:
        affine: ``(4, 4)`` array-like with a finite, invertible upper-left 3×3 block.
        what: name used in error messages (a file name when loading).

    Raises:
        InvalidInputError: wrong shape, non-finite entries or a singular 3×3 block.
    """
    arr = np.asarray(affine, dtype=np.float64)
    if arr.shape != (4, 4):
        raise InvalidInputError(f"{what} has shape {arr.shape}; expected a (4, 4) matrix")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} has non-finite entries (NaN or inf); expected finite")
    linear = arr[:3, :3]
    scale = float(np.abs(linear).max())
    if scale == 0.0 or abs(float(np.linalg.det(linear))) <= 1e-12 * scale**3:
        raise InvalidInputError(
            f"{what} is not invertible (its 3×3 voxel-to-mm block is singular); expected "
            "non-zero voxel sizes along three independent axes"
        )
    return arr


def _as_volume_array(data: np.ndarray, what: str) -> np.ndarray:
    """A 3D view of ``data``: 3D as is, 4D with a singleton last axis squeezed."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataFormatError(
            f"{what} has shape {tuple(data.shape)}; expected a 3D volume (D, H, W) or 4D "
            "with a singleton last axis"
        )
    return data


def _check_header_shape(path: Path, img: nib.Nifti1Image | nib.Nifti2Image) -> None:
    """Refuse a header whose grid is empty, too large, or larger than the file holds."""
    shape = tuple(int(s) for s in img.shape)
    if not shape or min(shape) < 1:
        raise DataFormatError(
            f"{path} has a header claiming shape {shape}; expected positive sizes (D, H, W)"
        )
    voxels = math.prod(shape)
    if voxels > MAX_NIFTI_VOXELS:
        raise DataFormatError(
            f"{path} has a header claiming shape {shape} ({voxels} voxels); expected at most "
            f"{MAX_NIFTI_VOXELS} voxels"
        )
    if not path.name.endswith(".gz"):  # uncompressed: the file must hold every voxel
        need = int(getattr(img.dataobj, "offset", 0)) + voxels * img.get_data_dtype().itemsize
        have = path.stat().st_size
        if have < need:
            raise DataFormatError(
                f"{path} holds {have} bytes but its header needs {need} for shape {shape}; "
                "the file looks truncated or corrupt (expected every voxel the header declares)"
            )


def load_nifti(path: str | Path) -> NiftiVolume:
    """Read one 3D NIfTI-1/NIfTI-2 volume (``.nii`` or ``.nii.gz``) as float32.

    Args:
        path: the file.

    Returns:
        :class:`NiftiVolume` with ``(D, H, W)`` float32 data (scaling slope/intercept
        applied) and the file's affine.

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: not a NIfTI file, corrupt or truncated data, not 3D (or 4D with
            one volume), non-finite voxel values, or a non-finite / singular affine.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"NIfTI file {path} does not exist; expected a .nii or .nii.gz")
    try:
        img = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError,
            EOFError, ValueError, zlib.error) as exc:
        raise DataFormatError(
            f"cannot read {path} as NIfTI: {exc}; expected an uncorrupted .nii/.nii.gz file"
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DataFormatError(
            f"{path} is a {type(img).__name__}, not a NIfTI image; expected .nii or .nii.gz"
        )
    _check_header_shape(path, img)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, EOFError, ValueError, OverflowError, zlib.error) as exc:
        raise DataFormatError(
            f"cannot read the voxel data of {path}: {exc}; the file looks truncated or corrupt "
            "(expected every voxel the header declares)"
        ) from exc
    data = np.ascontiguousarray(_as_volume_array(data, str(path)))
    if not np.all(np.isfinite(data)):
        raise DataFormatError(
            f"{path} holds {int(np.count_nonzero(~np.isfinite(data)))} non-finite voxel(s) "
            "(NaN or inf); expected finite values"
        )
    try:
        affine = validate_affine(img.affine, f"affine of {path}")
    except InvalidInputError as exc:
        raise DataFormatError(str(exc)) from exc
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return NiftiVolume(
        data=data,
        affine=affine,
        voxel_size=(float(zooms[0]), float(zooms[1]), float(zooms[2])),
        orientation=tuple(nib.aff2axcodes(affine)),  # type: ignore[arg-type]
        source_dtype=str(img.get_data_dtype()),
        path=path,
    )


def _on_disk(data: np.ndarray) -> np.ndarray:
    """The array as written: bool → uint8, integers → int32, anything else → float32."""
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer):
        if data.size and (data.min() < np.iinfo(np.int32).min or data.max() > np.iinfo(
                np.int32).max):
            raise InvalidInputError("integer volume does not fit in int32; expected labels/counts")
        return data.astype(np.int32)
    out = data.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError("volume holds NaN or inf values; expected finite values")
    return out


def save_nifti(
    volume: NiftiVolume | np.ndarray,
    affine: np.ndarray | None,
    path: str | Path,
    *,
    overwrite: bool = False,
) -> Path:
    """Write one 3D volume as NIfTI-1, atomically (temporary name, then rename).

    Args:
        volume: a :class:`NiftiVolume` or an array (a CPU torch tensor works too) of
            shape ``(D, H, W)``, or with leading singleton axes such as ``(1, 1, D, H, W)``
            (a map straight from a model). Floats are stored as float32, integers as
            int32 (label maps), booleans as uint8.
        affine: ``(4, 4)`` voxel-to-mm matrix; ``None`` uses the affine of a
            :class:`NiftiVolume` (required for a plain array).
        path: target file ending in ``.nii`` or ``.nii.gz`` (gzip-compressed).
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        InvalidInputError: bad shape, non-finite values, bad affine, wrong suffix, a
            missing affine, or an existing target without ``overwrite=True``.
        DataNotFoundError: the target folder does not exist.
    """
    path = Path(path).expanduser()
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    if suffix not in NIFTI_SUFFIXES:
        raise InvalidInputError(f"cannot save {path}: expected a name ending in {NIFTI_SUFFIXES}")
    if isinstance(volume, NiftiVolume):
        data = volume.data
        affine = volume.affine if affine is None else affine
    else:
        data = np.asarray(volume)
        while data.ndim > 3 and data.shape[0] == 1:
            data = data[0]
    if affine is None:
        raise InvalidInputError(
            "save_nifti needs an affine for a plain array; pass the source volume's affine"
        )
    affine = validate_affine(affine)
    if data.ndim != 3:
        raise InvalidInputError(
            f"cannot save an array of shape {tuple(data.shape)} as a volume; expected "
            "(D, H, W) or (1, ..., 1, D, H, W)"
        )
    if not path.parent.is_dir():
        raise DataNotFoundError(f"folder {path.parent} does not exist; create it before saving")
    if path.exists() and not overwrite:
        raise InvalidInputError(
            f"{path} already exists; pass overwrite=True to replace it (nothing was written)"
        )
    img = nib.Nifti1Image(_on_disk(data), affine)
    img.header.set_xyzt_units("mm")
    tmp = path.with_name(f".{path.name[: -len(suffix)]}.tmp-{uuid.uuid4().hex}{suffix}")
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
