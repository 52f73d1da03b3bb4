"""Private file helpers shared by the real-data loaders (DR, histology)."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wslbench.errors import DataFormatError, DataNotFoundError

#: Largest image (width × height) the loaders decode: 8192² pixels, far above any
#: photograph of the supported data sets (Kaggle DR: at most about 5200 × 3500). A
#: header claiming more is refused before any pixel buffer is allocated.
MAX_IMAGE_PIXELS = 8192 * 8192


def _check_pixels(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header claims an empty or too large pixel grid."""
    if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
        raise DataFormatError(
            f"image {path} claims {width}×{height} pixels; expected at least 1×1 and at most "
            f"{MAX_IMAGE_PIXELS} pixels (a larger header is refused as a decompression bomb)"
        )


def _check_finite(path: Path, arr: np.ndarray) -> np.ndarray:
    """Refuse a float image holding NaN or infinite values."""
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise DataFormatError(
            f"image {path} holds {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite "
            "value(s); expected finite pixel values"
        )
    return arr


def _norm(column: str) -> str:
    """A column name lower-cased with runs of white space collapsed (header spelling variants)."""
    return re.sub(r"\s+", " ", column.strip().lower())


def _open(path: Path) -> np.ndarray:
    """Read an image with Pillow as float64 in [0, 1] (8/16-bit scaled; float as stored).

    The header's size is checked before decoding (:data:`MAX_IMAGE_PIXELS`); float
    images must be finite.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image file {path} does not exist; expected a readable image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DataFormatError(
            f"image {path} is too large to decode ({exc}); expected at most "
            f"{MAX_IMAGE_PIXELS} pixels"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(
            f"cannot read image {path}: {exc}; expected an uncorrupted JPEG/PNG/TIFF file"
        ) from exc
    with im:
        _check_pixels(path, *im.size)
        try:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64) / 65535.0
            elif im.mode == "F":
                arr = np.asarray(im, dtype=np.float64)
            elif im.mode in ("L", "RGB"):
                arr = np.asarray(im, dtype=np.float64) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataFormatError(
                f"cannot read image {path}: {exc}; expected an uncorrupted JPEG/PNG/TIFF file"
            ) from exc
    return _check_finite(path, arr)


def _check_root(root: str | Path, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"{what} folder {path} does not exist; expected the extracted data set")
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                    sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            reader = csv.DictReader(fh, dialect=dialect)
            rows = [dict(r) for r in reader]
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(
            f"cannot read CSV file {path}: {exc}; expected a UTF-8 text table with a header row"
        ) from exc
    if not fields:
        raise DataFormatError(f"CSV file {path} is empty; expected a header row")
    return [{_norm(k): (v or "").strip() for k, v in r.items() if k is not None} for r in rows]


def _require_columns(rows: list[dict[str, str]], columns: Sequence[str], source: Path) -> None:
    have = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataFormatError(
            f"{source} lacks column(s) {missing}; expected columns {list(columns)}, "
            f"found {sorted(have)}"
        )

