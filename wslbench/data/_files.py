"""Private file helpers shared by the real-data loaders (DR, histology)."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wslbench.errors import DataFormatError, DataNotFoundError


def _norm(column: str) -> str:
    """A column name lower-cased with runs of white space collapsed (header spelling variants)."""
    return re.sub(r"\s+", " ", column.strip().lower())


def _open(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image file {path} does not exist; expected a readable image")
    try:
        with Image.open(path) as im:
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
    return arr


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
        raise DataFormatError(f"cannot read CSV file {path}: {exc}") from exc
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

