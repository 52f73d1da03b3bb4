"""Loaders for the real histology data sets of Rony (2020), section 2.1.1.

Nothing is downloaded: each loader reads a folder the user already has.

* :func:`load_glas`: GlaS (section 2.1.1.3), the Warwick QU layout: ``train_N.bmp``,
  ``testA_N.bmp``, ``testB_N.bmp`` with gland annotations ``<name>_anno.bmp`` (instance
  labels: 0 background, 1, 2, ... one per gland) and ``Grade.csv`` with columns
  ``name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)`` (the real
  header has leading spaces, and the grades ``" benign"`` / ``" malignant"`` too:
  column names and values are stripped and compared case-insensitively). Test parts A
  and B can be mixed, as in the thesis, by selecting both.
* :func:`load_breakhis`: BreakHis (section 2.1.1.1), the distributed layout
  ``BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<type>/<patient>/<M>X/
  SOB_<B|M>_<TYPE>-<YY>-<slide>-<M>-<seq>.png``. Class, tumour type, patient and
  magnification come from the file name (and must agree with the folders). The
  official five folds ``Folds.csv`` (columns ``fold, mag, grp, filename``; ``grp`` is
  ``train`` or ``test``) are read when present (section 2.1.2.2: each fold and
  magnification has its own test set).
* :func:`load_bach`: BACH part A (section 2.1.1.2): class folders ``Normal/``,
  ``Benign/``, ``InSitu/``, ``Invasive/`` of ``.tif`` images (in ``root``, ``root/Photos``
  or ``root/ICIAR2018_BACH_Challenge/Photos``), read with tifffile.

Each loader returns a :class:`HistologyDataset` of :class:`HistologySample` records
whose images (and GlaS masks) are read lazily. Missing folders raise
:class:`~wslbench.errors.DataNotFoundError`; unknown layouts, bad CSV files and corrupt
images raise :class:`~wslbench.errors.DataFormatError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wslbench.data._files import (
    _check_finite,
    _check_pixels,
    _check_root,
    _open,
    _read_csv,
    _require_columns,
)
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "GLAS_CLASSES",
    "BREAKHIS_CLASSES",
    "BREAKHIS_TUMOUR_TYPES",
    "BREAKHIS_MAGNIFICATIONS",
    "BACH_CLASSES",
    "BACH_FOLDERS",
    "HistologySample",
    "HistologyDataset",
    "load_histology_image",
    "load_glas",
    "load_breakhis",
    "load_bach",
]

GLAS_CLASSES: tuple[str, ...] = ("benign", "malignant")
BREAKHIS_CLASSES: tuple[str, ...] = ("benign", "malignant")
#: BreakHis tumour-type code of the file name → folder name.
BREAKHIS_TUMOUR_TYPES: dict[str, str] = {
    "A": "adenosis",
    "F": "fibroadenoma",
    "PT": "phyllodes_tumor",
    "TA": "tubular_adenoma",
    "DC": "ductal_carcinoma",
    "LC": "lobular_carcinoma",
    "MC": "mucinous_carcinoma",
    "PC": "papillary_carcinoma",
}
BREAKHIS_MAGNIFICATIONS: tuple[int, ...] = (40, 100, 200, 400)
BACH_CLASSES: tuple[str, ...] = ("normal", "benign", "in_situ", "invasive")
#: BACH class → folder name in the distributed archive.
BACH_FOLDERS: dict[str, str] = {
    "normal": "Normal",
    "benign": "Benign",
    "in_situ": "InSitu",
    "invasive": "Invasive",
}

_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class HistologySample:
    """One image of a histology data set.

    Attributes:
        image_id: identifier in the data set (file stem).
        path: image file.
        label: class index in the data set's ``class_names``.
        class_name: the class name.
        patient_id: patient (GlaS: ``patient ID`` column; BreakHis: ``<YY>-<slide>`` of
            the file name; BACH: ``None``, the data set does not give it).
        split: official part (GlaS: ``"train"``, ``"testA"``, ``"testB"``; else ``None``).
        mask_path: GlaS gland annotation, ``None`` elsewhere.
        magnification: BreakHis magnification factor (40, 100, 200, 400), else ``None``.
        tumour_type: BreakHis tumour type (:data:`BREAKHIS_TUMOUR_TYPES` value) or the
            GlaS Sirinukunwattana grade; ``None`` elsewhere.
        folds: BreakHis official folds: fold number → ``"train"`` or ``"test"``.
    """

    image_id: str
    path: Path
    label: int
    class_name: str
    patient_id: str | None = None
    split: str | None = None
    mask_path: Path | None = None
    magnification: int | None = None
    tumour_type: str | None = None
    folds: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HistologyDataset:
    """A list of :class:`HistologySample` with lazy image loading.

    Attributes:
        name: ``"glas"``, ``"breakhis"`` or ``"bach"``.
        root: the folder the data set was read from.
        class_names: class names in label order.
        samples: the samples, sorted by image id.
    """

    name: str
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[HistologySample, ...]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> HistologySample:
        return self.samples[index]

    def __iter__(self) -> Iterator[HistologySample]:
        return iter(self.samples)

    def labels(self) -> np.ndarray:
        """``(N,)`` int64 class indices."""
        return np.array([s.label for s in self.samples], np.int64)

    def load_image(self, index: int) -> np.ndarray:
        """Read image ``index`` as ``(H, W, 3)`` float32 RGB in [0, 1]."""
        return load_histology_image(self.samples[index].path)

    def load_mask(self, index: int, instances: bool = False) -> np.ndarray:
        """Read the GlaS annotation of image ``index``.

        Args:
            index: sample index.
            instances: return the ``(H, W)`` int32 instance labels (0 background, one
                id per gland) instead of the ``(H, W)`` bool gland mask.
        """
        sample = self.samples[index]
        if sample.mask_path is None:
            raise InvalidInputError(
                f"{self.name} sample {sample.image_id!r} has no pixel annotation; only GlaS "
                "ships gland masks"
            )
        labels = _read_label_image(sample.mask_path)
        return labels if instances else labels > 0

    def select(
        self,
        *,
        split: str | None = None,
        magnification: int | None = None,
        fold: int | None = None,
        group: str | None = None,
    ) -> list[int]:
        """Indices of the samples matching every given criterion.

        Args:
            split: GlaS part (``"train"``, ``"testA"``, ``"testB"``).
            magnification: BreakHis magnification factor.
            fold: BreakHis official fold (1–5); needs ``group``.
            group: ``"train"`` or ``"test"`` within ``fold``.
        """
        if (fold is None) != (group is None):
            raise InvalidInputError("fold and group must be given together, e.g. fold=1, "
                                    "group='train'")
        if group is not None and group not in ("train", "test"):
            raise InvalidInputError(f"group must be 'train' or 'test', got {group!r}")
        out = []
        for i, s in enumerate(self.samples):
            if split is not None and s.split != split:
                continue
            if magnification is not None and s.magnification != magnification:
                continue
            if fold is not None and s.folds.get(fold) != group:
                continue
            out.append(i)
        return out


# --------------------------------------------------------------------------- image files


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]  # its size is checked before any pixel buffer is allocated
            _check_pixels(path, int(page.imagewidth), int(page.imagelength))
            arr = np.asarray(tif.asarray())
    except DataFormatError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt files
        raise DataFormatError(
            f"cannot read TIFF image {path}: {exc}; expected an uncorrupted RGB TIFF file"
        ) from exc
    if arr.size == 0:
        raise DataFormatError(
            f"cannot read TIFF image {path}: it holds no pixel data; expected an uncorrupted "
            "RGB TIFF file")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    return _check_finite(path, arr.astype(np.float64))


def load_histology_image(path: str | Path) -> np.ndarray:
    """Read a histology image as ``(H, W, 3)`` float32 RGB in [0, 1].

    TIFF files are read with tifffile (integer values divided by their dtype maximum),
    other formats with Pillow (:mod:`wslbench.data.dr_loaders`). Grey images are
    replicated to three channels; an alpha channel is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image file {path} does not exist; expected a readable image")
    arr = _read_tiff(path) if path.suffix.lower() in _TIFF_SUFFIXES else _open(path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise DataFormatError(
            f"image {path} has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    return np.clip(arr[..., :3], 0.0, 1.0).astype(np.float32)


def _read_label_image(path: Path) -> np.ndarray:
    """Integer label image (GlaS ``_anno.bmp``) as ``(H, W)`` int32, values unscaled."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataNotFoundError(f"annotation file {path} does not exist; expected a label BMP/PNG")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(
            f"cannot read annotation {path}: {exc}; expected an uncorrupted label BMP/PNG"
        ) from exc
    if arr.ndim == 3:  # an RGB export of the labels: any channel carries the id
        arr = arr[..., :3].max(axis=2)
    return arr.astype(np.int32)


# --------------------------------------------------------------------------- GlaS

_GLAS_NAME = re.compile(r"^(?P<split>train|testA|testB)_(?P<num>\d+)$")


def load_glas(root: str | Path, grades_csv: str | Path | None = None) -> HistologyDataset:
    """Read GlaS (Warwick QU gland segmentation, section 2.1.1.3).

    Args:
        root: the folder holding the ``.bmp`` files (e.g. ``Warwick QU Dataset
            (Released 2016_07_08)``).
        grades_csv: the grades file; default ``root/Grade.csv``.

    Returns:
        A :class:`HistologyDataset` with label 0 benign / 1 malignant (the ``grade
        (GlaS)`` column), the split, the patient id, the Sirinukunwattana grade in
        ``tumour_type`` and the gland annotation in ``mask_path``.
    """
    root = _check_root(root, "GlaS")
    csv_path = Path(grades_csv) if grades_csv is not None else root / "Grade.csv"
    if not csv_path.is_file():
        raise DataNotFoundError(
            f"GlaS grades file {csv_path} not found; expected Grade.csv with columns 'name', "
            "'patient ID', 'grade (GlaS)' in the data set folder, or grades_csv=..."
        )
    rows = _read_csv(csv_path)
    if not rows:
        raise DataFormatError(f"{csv_path} has a header but no rows; expected one row per image")
    _require_columns(rows, ("name", "grade (glas)"), csv_path)
    samples = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        name = Path(row["name"]).stem
        if name in seen:
            raise DataFormatError(
                f"{csv_path}: image {name!r} is listed on data rows {seen[name]} and {number}; "
                "expected each image once"
            )
        seen[name] = number
        m = _GLAS_NAME.match(name)
        if m is None:
            raise DataFormatError(
                f"{csv_path}: image name {row['name']!r} is not train_N, testA_N or testB_N"
            )
        grade = row["grade (glas)"].lower()
        if grade not in GLAS_CLASSES:
            raise DataFormatError(
                f"{csv_path}: image {name} has grade {row['grade (glas)']!r}; expected "
                "'benign' or 'malignant'"
            )
        image = root / f"{name}.bmp"
        anno = root / f"{name}_anno.bmp"
        for f in (image, anno):
            if not f.is_file():
                raise DataFormatError(
                    f"GlaS file {f} listed in {csv_path} is missing; expected {name}.bmp and "
                    f"{name}_anno.bmp in {root}"
                )
        samples.append(HistologySample(
            image_id=name, path=image, label=GLAS_CLASSES.index(grade), class_name=grade,
            patient_id=row.get("patient id") or None, split=m.group("split"), mask_path=anno,
            tumour_type=row.get("grade (sirinukunwattana et al. 2015)") or None,
        ))
    samples.sort(key=lambda s: (s.split or "", int(_GLAS_NAME.match(s.image_id).group("num"))))
    return HistologyDataset("glas", root, GLAS_CLASSES, tuple(samples))


# --------------------------------------------------------------------------- BreakHis

_BREAKHIS_NAME = re.compile(
    r"^SOB_(?P<cls>[BM])_(?P<type>[A-Z]+)-(?P<patient>\d+-[0-9A-Za-z]+)-(?P<mag>\d+)-(?P<seq>\d+)$"
)


def _breakhis_base(root: Path) -> Path:
    for base in (root, root / "breast", root / "histology_slides" / "breast",
                 root / "BreaKHis_v1" / "histology_slides" / "breast"):
        if (base / "benign").is_dir() or (base / "malignant").is_dir():
            return base
    raise DataFormatError(
        f"{root} does not have the BreakHis layout; expected BreaKHis_v1/histology_slides/"
        "breast/{benign,malignant}/SOB/<type>/<patient>/<M>X/*.png under it"
    )


def _breakhis_folds(path: Path) -> dict[str, dict[int, str]]:
    rows = _read_csv(path)
    if not rows:
        raise DataFormatError(f"{path} has a header but no rows; expected fold,mag,grp,filename")
    _require_columns(rows, ("fold", "mag", "grp", "filename"), path)
    out: dict[str, dict[int, str]] = {}
    for row in rows:
        grp = row["grp"].lower()
        try:
            fold = int(row["fold"])
        except ValueError:
            raise DataFormatError(
                f"{path}: fold {row['fold']!r} is not an integer; expected 1-5") from None
        if grp not in ("train", "test"):
            raise DataFormatError(f"{path}: grp {row['grp']!r}; expected 'train' or 'test'")
        name = Path(row["filename"].replace("\\", "/")).stem
        out.setdefault(name, {})[fold] = grp
    return out


def load_breakhis(root: str | Path, folds_csv: str | Path | None = None) -> HistologyDataset:
    """Read BreakHis v1 (section 2.1.1.1).

    Args:
        root: the folder holding ``BreaKHis_v1`` (or any folder down to ``breast``).
        folds_csv: official folds file; default the first ``Folds.csv`` found in
            ``root`` or between ``root`` and the ``breast`` folder. Without one,
            ``folds`` stay empty.

    Returns:
        A :class:`HistologyDataset` with label 0 benign / 1 malignant, tumour type,
        patient id, magnification and the official folds.
    """
    root = _check_root(root, "BreakHis")
    base = _breakhis_base(root)
    if folds_csv is not None:
        folds_path: Path | None = Path(folds_csv)
        if not folds_path.is_file():
            raise DataNotFoundError(f"BreakHis folds file {folds_path} does not exist; expected Folds.csv")
    else:
        candidates = [p / "Folds.csv" for p in (base, *base.parents) if p == root
                      or root in p.parents]
        folds_path = next((c for c in candidates if c.is_file()), None)
    folds = _breakhis_folds(folds_path) if folds_path is not None else {}
    samples = []
    for f in sorted(base.rglob("*.png")):
        m = _BREAKHIS_NAME.match(f.stem)
        if m is None:
            raise DataFormatError(
                f"BreakHis file name {f.name!r} is not SOB_<B|M>_<TYPE>-<YY>-<slide>-<mag>-"
                "<seq>.png (e.g. SOB_B_A-14-22549AB-40-001.png)"
            )
        cls = "benign" if m.group("cls") == "B" else "malignant"
        code, mag = m.group("type"), int(m.group("mag"))
        rel = f.relative_to(base).parts
        if code not in BREAKHIS_TUMOUR_TYPES or mag not in BREAKHIS_MAGNIFICATIONS:
            raise DataFormatError(
                f"{f}: tumour type {code!r} or magnification {mag} unknown; expected one of "
                f"{sorted(BREAKHIS_TUMOUR_TYPES)} and {list(BREAKHIS_MAGNIFICATIONS)}"
            )
        if rel[0] != cls or f.parent.name.upper() != f"{mag}X":
            raise DataFormatError(
                f"{f}: the file name says {cls} at {mag}X but the folders say {rel[0]}/"
                f"{f.parent.name}; expected {cls}/.../{mag}X/{f.name}"
            )
        samples.append(HistologySample(
            image_id=f.stem, path=f, label=BREAKHIS_CLASSES.index(cls), class_name=cls,
            patient_id=m.group("patient"), magnification=mag,
            tumour_type=BREAKHIS_TUMOUR_TYPES[code], folds=dict(folds.get(f.stem, {})),
        ))
    if not samples:
        raise DataNotFoundError(f"no BreakHis .png image found under {base}")
    return HistologyDataset("breakhis", root, BREAKHIS_CLASSES,
                            tuple(sorted(samples, key=lambda s: s.image_id)))


# --------------------------------------------------------------------------- BACH


def load_bach(root: str | Path) -> HistologyDataset:
    """Read BACH 2018 part A microscopy images (section 2.1.1.2).

    Args:
        root: the folder holding the class folders ``Normal``, ``Benign``, ``InSitu``,
            ``Invasive`` (or its ``Photos`` / ``ICIAR2018_BACH_Challenge/Photos`` parent).

    Returns:
        A :class:`HistologyDataset` with labels 0 normal, 1 benign, 2 in situ,
        3 invasive (:data:`BACH_CLASSES`).
    """
    root = _check_root(root, "BACH")
    for base in (root, root / "Photos", root / "ICIAR2018_BACH_Challenge" / "Photos"):
        if all((base / folder).is_dir() for folder in BACH_FOLDERS.values()):
            break
    else:
        raise DataFormatError(
            f"{root} does not have the BACH part A layout; expected the class folders "
            f"{list(BACH_FOLDERS.values())} of .tif images (directly or under Photos/)"
        )
    samples = []
    for label, (cls, folder) in enumerate(BACH_FOLDERS.items()):
        for f in sorted((base / folder).iterdir()):
            if f.is_file() and f.suffix.lower() in _TIFF_SUFFIXES:
                samples.append(HistologySample(image_id=f.stem, path=f, label=label,
                                               class_name=cls))
    if not samples:
        raise DataNotFoundError(f"no BACH .tif image found in the class folders of {base}")
    return HistologyDataset("bach", root, BACH_CLASSES,
                            tuple(sorted(samples, key=lambda s: s.image_id)))
