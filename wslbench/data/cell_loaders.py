"""Loaders for the real mitosis-detection data sets of Xue et al., 4.2 (Table 1).

Nothing is downloaded: :func:`load_cell_folder` reads a folder the user already has,
in one of three styles (:data:`CELL_STYLES`). Every style finds the images (``.bmp``,
``.png``, ``.jpg``, ``.tif``, ``.tiff``) anywhere under the folder and reads one CSV of
mitosis centroids per image. CSV files may have no header (the distributed files have
none: values are then read by position) or a header naming the columns below (any case).
Values may be separated by commas, semicolons or tabs.

* ``"icpr2012"`` (ICPR 2012 MITOS, 2084 × 2084 images): ``<stem>.csv`` next to
  ``<stem>.bmp``; one row per mitosis holding ``x, y`` (column, row) pairs: a single pair
  is the centroid, several pairs (``x1, y1, x2, y2, ...``, the pixels of the mitosis) are
  averaged into it. Header form: columns ``x, y``. An image without CSV is an error
  (every image of the release has one, empty when it holds no mitosis).
* ``"mitos_atypia14"`` (MITOS-ATYPIA-14, 1539 × 1376 x40 frames): ``<stem>_mitosis.csv``
  next to the image or in a ``mitosis/`` folder of one of its parent folders (the release
  layout ``A03/frames/x40/A03_00Aa.tiff`` and ``A03/mitosis/A03_00Aa_mitosis.csv``);
  rows ``x, y, confidence``; only rows with ``confidence ≥ confidence_threshold``
  (default :data:`MITOS_ATYPIA_CONFIDENCE_THRESHOLD` = 0.5, the pathologists' agreement
  score) are kept. ``*_not_mitosis.csv`` files are ignored, and so are images in ``x20``
  folders (annotated at x40 only). An image without CSV is an error.
* ``"amida13"`` (AMIDA13, 2000 × 2000 images in one folder per patient): ``<stem>.csv``
  next to the image or in a folder named after the image's patient folder anywhere
  under the root (the release layout ``mitoses_image_data/01/01.tif`` and
  ``mitoses_ground_truth/01/01.csv``); rows ``row, col`` (that is ``y, x``; header form:
  ``row, col`` or ``y, x``). An image without CSV holds no mitosis (the ground truth
  lists only images with mitoses).

``missing_csv`` overrides the per-style rule (``"error"`` or ``"empty"``). Coordinates
are validated against the image size, read from the file header without decoding the
pixels: they must be finite and in ``[0, H] × [0, W]``. Images themselves are read
lazily by :meth:`CellFolderDataset.image`. Missing or empty folders raise
:class:`~wslbench.errors.DataNotFoundError`; bad CSV files, unreadable images and
missing CSV files (where the style requires one) raise
:class:`~wslbench.errors.DataFormatError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wslbench.data._files import (
    MAX_IMAGE_PIXELS,
    _check_pixels,
    _check_root,
    _norm,
    _read_csv,
    _require_columns,
)
from wslbench.data.histology_loaders import load_histology_image
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "CELL_STYLES",
    "CELL_IMAGE_SUFFIXES",
    "MITOS_ATYPIA_CONFIDENCE_THRESHOLD",
    "CellSample",
    "CellFolderDataset",
    "read_cell_csv",
    "load_cell_folder",
]

#: Style → whether an image without CSV holds zero cells (``True``) or is an error.
CELL_STYLES: dict[str, bool] = {"icpr2012": False, "mitos_atypia14": False, "amida13": True}
CELL_IMAGE_SUFFIXES: tuple[str, ...] = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
MITOS_ATYPIA_CONFIDENCE_THRESHOLD: float = 0.5

_TIFF_SUFFIXES = (".tif", ".tiff")
#: Header-form columns of each style: alternatives, each ``(row column, col column)``.
_HEADER_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "icpr2012": (("y", "x"),),
    "mitos_atypia14": (("y", "x"),),
    "amida13": (("row", "col"), ("y", "x")),
}


@dataclass(frozen=True)
class CellSample:
    """One annotated image of a real cell-detection data set.

    Attributes:
        name: unique image id (the file stem; ``"<patient>/<stem>"`` for AMIDA13).
        path: image file.
        csv_path: annotation file, ``None`` when the image has none (zero cells).
        centroids: ``(k, 2)`` float64 ``(row, col)`` mitosis centroids.
        shape: ``(H, W)`` of the image.
        patient_id: AMIDA13: the patient folder; ICPR 2012 / MITOS-ATYPIA-14: the part of
            the stem before the first ``_`` (the slide, e.g. ``"A03"``).
    """

    name: str
    path: Path
    csv_path: Path | None
    centroids: np.ndarray
    shape: tuple[int, int]
    patient_id: str


@dataclass(frozen=True)
class CellFolderDataset:
    """The images of a real data set with their centroids; images are read lazily.

    Attributes:
        style: a :data:`CELL_STYLES` key.
        root: the folder the data set was read from.
        samples: the samples, sorted by name.
        min_radius: the matching distance ρ given to :func:`load_cell_folder` (the radius
            of the smallest cell, Xue et al., 4.2), ``None`` if not given.
    """

    style: str
    root: Path
    samples: tuple[CellSample, ...]
    min_radius: float | None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> CellSample:
        return self.samples[index]

    def __iter__(self) -> Iterator[CellSample]:
        return iter(self.samples)

    @property
    def names(self) -> tuple[str, ...]:
        """Image ids in sample order."""
        return tuple(s.name for s in self.samples)

    @property
    def centroids(self) -> list[np.ndarray]:
        """Per image, ``(k, 2)`` float64 ``(row, col)`` centroids."""
        return [s.centroids for s in self.samples]

    def counts(self) -> np.ndarray:
        """``(N,)`` int64 number of mitoses per image."""
        return np.array([len(s.centroids) for s in self.samples], np.int64)

    def image(self, index: int) -> np.ndarray:
        """Read image ``index`` as ``(3, H, W)`` float32 RGB in [0, 1]."""
        return load_histology_image(self.samples[index].path).transpose(2, 0, 1).copy()


# --------------------------------------------------------------------------- files


def _image_shape(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the file header, without decoding the pixels.

    A header claiming more than :data:`~wslbench.data._files.MAX_IMAGE_PIXELS` pixels
    is refused here, before any image is decoded (a decompression bomb).
    """
    import warnings

    from PIL import Image

    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                shape = int(page.imagelength), int(page.imagewidth)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    shape = int(im.height), int(im.width)
    except Image.DecompressionBombError as exc:
        raise DataFormatError(
            f"image {path} is too large to decode ({exc}); expected at most "
            f"{MAX_IMAGE_PIXELS} pixels"
        ) from exc
    except Exception as exc:  # Pillow and tifffile raise many types on corrupt files
        raise DataFormatError(
            f"cannot read image {path}: {exc}; expected an uncorrupted JPEG/PNG/BMP/TIFF file"
        ) from exc
    _check_pixels(path, shape[1], shape[0])
    return shape


def _number(text: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(
            f"{path}, line {line}: {text!r} is not a number; expected numeric coordinates"
        ) from None
    if not math.isfinite(value):
        raise DataFormatError(
            f"{path}, line {line}: {text!r} is not a finite number; expected finite numeric "
            "coordinates"
        )
    return value


def _raw_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                    sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            return [[v.strip() for v in row] for row in csv.reader(fh, dialect=dialect)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(
            f"cannot read CSV file {path}: {exc}; expected a UTF-8 text table of coordinates"
        ) from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_rows(path: Path, style: str, threshold: float, header: list[str]
                 ) -> list[tuple[float, float, float]]:
    """``(row, col, confidence)`` rows of a CSV with a header (1.0: no confidence column)."""
    rows = _read_csv(path)
    have = {_norm(h) for h in header}
    pair = next((p for p in _HEADER_COLUMNS[style] if set(p) <= have), _HEADER_COLUMNS[style][0])
    needed = [pair[1], pair[0]] + (["confidence"] if style == "mitos_atypia14" else [])
    _require_columns(rows or [dict.fromkeys(have, "")], needed, path)
    out = []
    for line, row in enumerate(rows, start=2):
        conf = _number(row["confidence"], path, line) if style == "mitos_atypia14" else 1.0
        out.append((_number(row[pair[0]], path, line), _number(row[pair[1]], path, line), conf))
    return [r for r in out if r[2] >= threshold]


def _positional_rows(path: Path, style: str, rows: list[list[str]], threshold: float
                     ) -> list[tuple[float, float, float]]:
    """``(row, col, confidence)`` rows of a headerless CSV (column order of the style)."""
    out = []
    expected = {"icpr2012": "x, y (or x1, y1, x2, y2, ...)", "mitos_atypia14": "x, y, confidence",
                "amida13": "row, col"}[style]
    for line, fields in enumerate(rows, start=1):
        fields = [f for f in fields if f != ""]
        if not fields:
            continue
        values = [_number(f, path, line) for f in fields]
        need = 3 if style == "mitos_atypia14" else 2
        if len(values) < need or (style == "icpr2012" and len(values) % 2):
            raise DataFormatError(
                f"{path}, line {line}: {len(values)} value(s), missing column(s); expected "
                f"{expected}")
        if style == "icpr2012":
            xy = np.asarray(values).reshape(-1, 2).mean(axis=0)
            out.append((float(xy[1]), float(xy[0]), 1.0))
        elif style == "mitos_atypia14":
            out.append((values[1], values[0], values[2]))
        else:
            out.append((values[0], values[1], 1.0))
    return [r for r in out if r[2] >= threshold]


def read_cell_csv(
    path: str | Path,
    *,
    style: str,
    shape: tuple[int, int] | None = None,
    confidence_threshold: float = MITOS_ATYPIA_CONFIDENCE_THRESHOLD,
) -> np.ndarray:
    """Read one annotation CSV of a :data:`CELL_STYLES` style (module docstring).

    Args:
        path: the CSV file.
        style: ``"icpr2012"``, ``"mitos_atypia14"`` or ``"amida13"``.
        shape: ``(H, W)`` of the image; coordinates outside ``[0, H] × [0, W]`` raise
            :class:`~wslbench.errors.DataFormatError` (``None``: only negatives do).
        confidence_threshold: MITOS-ATYPIA-14 rows below it are dropped.

    Returns:
        ``(k, 2)`` float64 ``(row, col)`` centroids, in file order.
    """
    _check_style(style)
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"annotation file {path} does not exist; expected a CSV file of mitosis centroids")
    rows = _raw_rows(path)
    first = next(([f for f in r if f != ""] for r in rows if any(f != "" for f in r)), [])
    if first and not any(_is_number(f) for f in first):
        cells = _header_rows(path, style, confidence_threshold, first)
    else:
        cells = _positional_rows(path, style, rows, confidence_threshold)
    pts = np.array([(r, c) for r, c, _ in cells], np.float64).reshape(-1, 2)
    bad = np.any(pts < 0, axis=1)
    if shape is not None:
        bad |= (pts[:, 0] > shape[0]) | (pts[:, 1] > shape[1])
    if np.any(bad):
        r, c = pts[np.argmax(bad)]
        limits = f"[0, {shape[0]}] × [0, {shape[1]}]" if shape is not None else "≥ 0"
        raise DataFormatError(
            f"{path}: centroid (row {r:g}, col {c:g}) is outside the image; expected "
            f"coordinates in {limits}")
    return pts


# --------------------------------------------------------------------------- folders


def _is_real(value: object) -> bool:
    """A finite real number (not a bool, not a string)."""
    return (not isinstance(value, bool) and isinstance(value, int | float | np.number)
            and math.isfinite(value))


def _check_style(style: str) -> None:
    if not isinstance(style, str) or style not in CELL_STYLES:
        raise InvalidInputError(f"unknown cell data style {style!r}; expected one of "
                                f"{sorted(CELL_STYLES)}")


def _find_csv(image: Path, root: Path, style: str, amida_index: dict[tuple[str, str], list[Path]]
              ) -> Path | None:
    if style == "mitos_atypia14":
        name = f"{image.stem}_mitosis.csv"
        for folder in (image.parent, *[p / "mitosis" for p in image.parents
                                       if p == root or root in p.parents]):
            if (folder / name).is_file():
                return folder / name
        return None
    same = image.with_suffix(".csv")
    if same.is_file():
        return same
    if style == "amida13":
        found = amida_index.get((image.parent.name, f"{image.stem}.csv"), [])
        if len(found) > 1:
            raise DataFormatError(
                f"several annotation files match image {image}: {[str(f) for f in found]}; "
                "expected one <patient>/<stem>.csv")
        return found[0] if found else None
    return None


def load_cell_folder(
    root: str | Path,
    *,
    style: str,
    confidence_threshold: float = MITOS_ATYPIA_CONFIDENCE_THRESHOLD,
    missing_csv: str | None = None,
    min_radius: float | None = None,
) -> CellFolderDataset:
    """Read a real mitosis-detection folder (Xue et al., 4.2, Table 1).

    Args:
        root: the extracted data set folder.
        style: ``"icpr2012"``, ``"mitos_atypia14"`` or ``"amida13"`` (module docstring).
        confidence_threshold: MITOS-ATYPIA-14 rows with a lower confidence are dropped.
        missing_csv: ``"error"`` or ``"empty"`` (zero cells) for an image without CSV;
            ``None``: the style's rule (:data:`CELL_STYLES`: only AMIDA13 allows it).
        min_radius: the matching distance ρ (px) to store with the data set.

    Returns:
        A :class:`CellFolderDataset`, samples sorted by name.
    """
    _check_style(style)
    if missing_csv not in (None, "error", "empty"):
        raise InvalidInputError(f"missing_csv must be None, 'error' or 'empty', got "
                                f"{missing_csv!r}")
    if not (_is_real(confidence_threshold) and 0.0 <= confidence_threshold <= 1.0):
        raise InvalidInputError(
            f"confidence_threshold must be a number in [0, 1], got {confidence_threshold!r}")
    if min_radius is not None and not (_is_real(min_radius) and min_radius > 0):
        raise InvalidInputError(
            f"min_radius must be a positive number or None, got {min_radius!r}")
    allow_missing = CELL_STYLES[style] if missing_csv is None else missing_csv == "empty"
    root = _check_root(root, f"{style} cell data")
    images = sorted(p for p in root.rglob("*") if p.is_file()
                    and p.suffix.lower() in CELL_IMAGE_SUFFIXES
                    and not (style == "mitos_atypia14" and "x20" in p.relative_to(root).parts))
    if not images:
        raise DataNotFoundError(
            f"no image ({', '.join(CELL_IMAGE_SUFFIXES)}) found under {root}; expected the "
            f"extracted {style} data set")
    amida_index: dict[tuple[str, str], list[Path]] = {}
    if style == "amida13":
        for f in root.rglob("*.csv"):
            amida_index.setdefault((f.parent.name, f.name), []).append(f)
    samples: dict[str, CellSample] = {}
    for image in images:
        shape = _image_shape(image)
        csv_path = _find_csv(image, root, style, amida_index)
        if csv_path is None and not allow_missing:
            expected = f"{image.stem}_mitosis.csv" if style == "mitos_atypia14" \
                else f"{image.stem}.csv"
            raise DataFormatError(
                f"image {image} has no annotation file {expected}; the {style} style needs one "
                "per image (pass missing_csv='empty' to count such images as zero cells)")
        pts = np.zeros((0, 2)) if csv_path is None else read_cell_csv(
            csv_path, style=style, shape=shape, confidence_threshold=confidence_threshold)
        patient = image.parent.name if style == "amida13" else image.stem.split("_")[0]
        name = f"{patient}/{image.stem}" if style == "amida13" else image.stem
        if name in samples:
            raise DataFormatError(
                f"two images are named {name!r}: {samples[name].path} and {image}; expected "
                "unique image names")
        samples[name] = CellSample(name=name, path=image, csv_path=csv_path, centroids=pts,
                                   shape=shape, patient_id=patient)
    return CellFolderDataset(style=style, root=root,
                             samples=tuple(samples[k] for k in sorted(samples)),
                             min_radius=None if min_radius is None else float(min_radius))
