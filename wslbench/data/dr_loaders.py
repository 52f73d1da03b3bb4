"""Loaders for the real DR data sets of Quellec et al. (2017), section 5.3.

Nothing is downloaded: each loader reads a folder the user already has.

* :func:`load_kaggle_dr`: Kaggle Diabetic Retinopathy (section 5.3.1): images
  ``<patient>_left.jpeg`` / ``<patient>_right.jpeg`` (in ``root`` or ``root/train``)
  and ``trainLabels.csv`` with columns ``image, level`` (ETDRS grade 0–4). Left and
  right eyes of a patient are paired (the contralateral eye of section 5.6).
* :func:`load_diaretdb1`: DiaretDB1 v1.1 (section 5.3.2) in its distributed layout
  ``resources/images/ddb1_fundusimages/imageXXX.png`` with the expert-confidence maps
  ``resources/images/ddb1_groundtruth/{hardexudates,softexudates,hemorrhages,
  redsmalldots}/imageXXX.png``. Image-level labels follow the standardized protocol
  of Kauppi et al. (2007) used by the paper: an image contains a lesion type iff its
  averaged expert-confidence map exceeds 75 % somewhere. The confidence of a pixel is
  read as grey level / 255 (maximum over the colour channels for RGB maps; 16-bit
  maps are divided by 65535).
* :func:`load_messidor`: Messidor: images plus the per-base annotation spreadsheets
  with columns ``Image name``, ``Retinopathy grade``, ``Risk of macular edema``.
  CSV exports are always read; ``.xls``/``.xlsx`` only when pandas finds the optional
  reader (xlrd / openpyxl), which wslbench does not install — otherwise a clear error
  asks for a CSV export. In the distributed layout each base folder ``BaseXY`` holds
  its images and ``Annotation_BaseXY.xls``; the three ophthalmologic departments
  (hospitals) are ``X`` = 1, 2, 3, each shipped as four bases. All bases are merged,
  and the known duplicate images (Arora et al., section 4.1: "several duplicate
  images") are dropped when their names are given.

Each loader returns a :class:`DRDataset`: a list of :class:`DRRecord` (path, grade,
labels, eye, patient id) whose images are read lazily by :meth:`DRDataset.load_image`
with :func:`load_fundus_image` (Pillow). Missing folders raise
:class:`~wslbench.errors.DataNotFoundError`; unknown layouts, bad spreadsheets and
corrupt images raise :class:`~wslbench.errors.DataFormatError`.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wslbench.data._files import _check_root, _norm, _open, _read_csv, _require_columns
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

__all__ = [
    "DRRecord",
    "DRDataset",
    "DIARETDB1_LESION_FOLDERS",
    "DIARETDB1_CONFIDENCE_THRESHOLD",
    "load_fundus_image",
    "load_confidence_map",
    "load_kaggle_dr",
    "load_diaretdb1",
    "load_messidor",
]

#: DiaretDB1 ground-truth folder of each wslbench lesion type (LESION_TYPES order).
DIARETDB1_LESION_FOLDERS: dict[str, str] = {
    "microaneurysm": "redsmalldots",
    "hemorrhage": "hemorrhages",
    "hard_exudate": "hardexudates",
    "cotton_wool": "softexudates",
}
#: Averaged expert confidence above which an image contains a lesion (section 5.3.2).
DIARETDB1_CONFIDENCE_THRESHOLD: float = 0.75

_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class DRRecord:
    """One photograph of a DR data set.

    Attributes:
        image_id: identifier in the data set (``"10_left"``, ``"image001"``, file name).
        path: image file.
        patient_id: patient (Kaggle: the number before ``_left``/``_right``; otherwise
            the image id, as the data set does not link images of a patient).
        eye: ``"left"``, ``"right"`` or ``None`` when unknown.
        grade: DR grade (Kaggle: ETDRS 0–4; Messidor: 0–3), ``None`` if not graded.
        referable: grade ≥ 2 (section 5.3.1), ``None`` if not graded.
        labels: further integer labels (DiaretDB1: lesion type → 0/1; Messidor:
            ``"macular_edema_risk"``).
        scores: further real-valued annotations (DiaretDB1: lesion type → maximum of
            the averaged confidence map).
    """

    image_id: str
    path: Path
    patient_id: str
    eye: str | None = None
    grade: int | None = None
    referable: bool | None = None
    labels: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DRDataset:
    """A list of :class:`DRRecord` with lazy image loading.

    Attributes:
        name: ``"kaggle_dr"``, ``"diaretdb1"`` or ``"messidor"``.
        root: the folder the data set was read from.
        records: the records, sorted by image id.
    """

    name: str
    root: Path
    records: tuple[DRRecord, ...]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> DRRecord:
        return self.records[index]

    def __iter__(self) -> Iterator[DRRecord]:
        return iter(self.records)

    def load_image(self, index: int) -> np.ndarray:
        """Read photograph ``index`` as ``(H, W, 3)`` float32 in [0, 1]."""
        return load_fundus_image(self.records[index].path)

    def grades(self) -> np.ndarray:
        """``(N,)`` int64 grades (−1 where ungraded)."""
        return np.array([-1 if r.grade is None else r.grade for r in self.records], np.int64)

    def patients(self) -> dict[str, list[int]]:
        """Patient id → indices of that patient's records (in record order)."""
        out: dict[str, list[int]] = {}
        for i, rec in enumerate(self.records):
            out.setdefault(rec.patient_id, []).append(i)
        return out

    def contralateral(self, index: int) -> int | None:
        """Index of the other eye of the same patient, or ``None`` (section 5.6)."""
        rec = self.records[index]
        if rec.eye is None:
            return None
        for j in self.patients()[rec.patient_id]:
            other = self.records[j]
            if j != index and other.eye is not None and other.eye != rec.eye:
                return j
        return None


# --------------------------------------------------------------------------- image files




def load_fundus_image(path: str | Path) -> np.ndarray:
    """Read a fundus photograph as ``(H, W, 3)`` float32 RGB in [0, 1] (Pillow).

    Grey images are replicated to three channels; 8-bit values are divided by 255,
    16-bit ones by 65535.
    """
    arr = _open(Path(path))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.clip(arr[..., :3], 0.0, 1.0).astype(np.float32)


def load_confidence_map(path: str | Path) -> np.ndarray:
    """Read a DiaretDB1 confidence map as ``(H, W)`` float32 in [0, 1].

    The confidence is grey level / 255 (/ 65535 for 16-bit files); for RGB maps the
    maximum over channels is used.
    """
    arr = _open(Path(path))
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)




def _index_images(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """File stem → path of every image in ``folder`` (first suffix in a fixed order wins)."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    found: dict[str, Path] = {}
    for f in sorted(files):
        if f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES:
            found.setdefault(f.stem, f)
    return found




def _int_field(row: dict[str, str], column: str, source: Path, valid: range) -> int:
    raw = row.get(column, "")
    try:
        value = int(float(raw))
    except ValueError:
        raise DataFormatError(
            f"{source}: column {column!r} has value {raw!r}; expected an integer in "
            f"{valid.start}-{valid.stop - 1}"
        ) from None
    if value not in valid:
        raise DataFormatError(
            f"{source}: column {column!r} has value {value}; expected {valid.start}-{valid.stop - 1}"
        )
    return value




# --------------------------------------------------------------------------- Kaggle DR

_KAGGLE_ID = re.compile(r"^(?P<patient>.+)_(?P<eye>left|right)$")


def load_kaggle_dr(
    root: str | Path,
    labels_csv: str | Path | None = None,
    *,
    image_dir: str | Path | None = None,
    missing: str = "error",
) -> DRDataset:
    """Read the Kaggle Diabetic Retinopathy data set (section 5.3.1).

    Args:
        root: data set folder.
        labels_csv: labels file with columns ``image, level``; default
            ``root/trainLabels.csv`` (``retinopathy_solution.csv`` for Kaggle-test works
            too when given here).
        image_dir: images folder; default ``root/train`` if it exists, else ``root``.
        missing: ``"error"`` (default) or ``"skip"`` for labelled images without a file.

    Returns:
        A :class:`DRDataset` with grade, referable (grade ≥ 2), eye and patient id.
    """
    if missing not in ("error", "skip"):
        raise InvalidInputError(f"missing must be 'error' or 'skip', got {missing!r}")
    root = _check_root(root, "Kaggle DR")
    csv_path = Path(labels_csv) if labels_csv is not None else root / "trainLabels.csv"
    if not csv_path.is_file():
        raise DataNotFoundError(
            f"Kaggle DR labels {csv_path} not found; expected trainLabels.csv (columns image, "
            "level) in the data set folder or labels_csv=..."
        )
    if image_dir is not None:
        img_dir = _check_root(image_dir, "Kaggle DR image")
    else:
        img_dir = root / "train" if (root / "train").is_dir() else root
    rows = _read_csv(csv_path)
    if not rows:
        raise DataFormatError(f"{csv_path} has a header but no rows; expected one row per image")
    _require_columns(rows, ("image", "level"), csv_path)
    files = _index_images(img_dir)
    records, absent = [], []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        image_id = row["image"]
        if image_id in seen:
            raise DataFormatError(
                f"{csv_path}: image {image_id!r} is listed on data rows {seen[image_id]} and "
                f"{number}; expected each image once"
            )
        seen[image_id] = number
        m = _KAGGLE_ID.match(image_id)
        if m is None:
            raise DataFormatError(
                f"{csv_path}: image name {image_id!r} is not '<patient>_left' or '<patient>_right'; "
                "expected Kaggle names such as '10_left'"
            )
        grade = _int_field(row, "level", csv_path, range(5))
        if image_id not in files:
            absent.append(image_id)
            continue
        records.append(DRRecord(image_id=image_id, path=files[image_id],
                                patient_id=m.group("patient"), eye=m.group("eye"),
                                grade=grade, referable=grade >= 2))
    if absent and missing == "error":
        raise DataFormatError(
            f"{len(absent)} labelled image(s) have no file in {img_dir} (e.g. {absent[:3]}); "
            "expected <id>_left.jpeg / <id>_right.jpeg files, or pass missing='skip'"
        )
    if not records:
        raise DataNotFoundError(f"no Kaggle DR image of {csv_path} found in {img_dir}")
    return DRDataset("kaggle_dr", root, tuple(sorted(records, key=lambda r: r.image_id)))


# --------------------------------------------------------------------------- DiaretDB1


def _diaretdb1_base(root: Path) -> Path:
    """The folder holding ``resources/images`` (accepts the zip's top folder too)."""
    for base in (root, root / "diaretdb1_v_1_1"):
        if (base / "resources" / "images" / "ddb1_fundusimages").is_dir():
            return base
    raise DataFormatError(
        f"{root} does not have the DiaretDB1 layout; expected "
        "resources/images/ddb1_fundusimages/imageXXX.png and "
        "resources/images/ddb1_groundtruth/{hardexudates,softexudates,hemorrhages,"
        "redsmalldots}/imageXXX.png under it"
    )


def _split_names(base: Path, split: str) -> set[str] | None:
    if split == "all":
        return None
    path = base / "resources" / f"{split}datasets" / f"{split}set.txt"
    if not path.is_file():
        raise DataNotFoundError(f"DiaretDB1 {split} split file {path} not found")
    names = {Path(line.strip().replace("\\", "/")).stem
             for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()}
    return names


def load_diaretdb1(
    root: str | Path,
    *,
    split: str = "all",
    threshold: float = DIARETDB1_CONFIDENCE_THRESHOLD,
) -> DRDataset:
    """Read DiaretDB1 v1.1 with the image-level labels of section 5.3.2.

    An image contains lesion type t iff ``max(confidence map of t) > threshold``
    (0.75), the map being the experts' averaged confidence read as grey level / 255.
    The label and the maximum confidence are stored in ``labels[t]`` and ``scores[t]``
    for t in ``microaneurysm, hemorrhage, hard_exudate, cotton_wool``.

    Args:
        root: the ``diaretdb1_v_1_1`` folder (or its parent).
        split: ``"all"``, ``"train"`` or ``"test"`` (``resources/{train,test}datasets/
            {train,test}set.txt``).
        threshold: confidence threshold of the protocol.

    Returns:
        A :class:`DRDataset` (grade and referable are ``None``: DiaretDB1 is not graded).
    """
    if split not in ("all", "train", "test"):
        raise InvalidInputError(f"split must be 'all', 'train' or 'test', got {split!r}")
    if not 0.0 <= threshold < 1.0:
        raise InvalidInputError(f"threshold must be in [0, 1), got {threshold}")
    root = _check_root(root, "DiaretDB1")
    base = _diaretdb1_base(root)
    images_dir = base / "resources" / "images" / "ddb1_fundusimages"
    gt_dir = base / "resources" / "images" / "ddb1_groundtruth"
    files = {k: v for k, v in _index_images(images_dir).items() if k.startswith("image")}
    if not files:
        raise DataNotFoundError(f"no imageXXX.png file in {images_dir}")
    wanted = _split_names(base, split)
    records = []
    for image_id, path in sorted(files.items()):
        if wanted is not None and image_id not in wanted:
            continue
        labels: dict[str, int] = {}
        scores: dict[str, float] = {}
        for lesion, folder in DIARETDB1_LESION_FOLDERS.items():
            gt = _index_images(gt_dir / folder).get(image_id) if (gt_dir / folder).is_dir() else None
            if gt is None:
                raise DataFormatError(
                    f"DiaretDB1 ground truth for {image_id} is missing in {gt_dir / folder}; "
                    f"expected {gt_dir / folder / (image_id + '.png')}"
                )
            peak = float(load_confidence_map(gt).max())
            scores[lesion] = peak
            labels[lesion] = int(peak > threshold)
        records.append(DRRecord(image_id=image_id, path=path, patient_id=image_id,
                                labels=labels, scores=scores))
    if not records:
        raise DataNotFoundError(f"no DiaretDB1 image of the {split!r} split found in {images_dir}")
    return DRDataset("diaretdb1", root, tuple(records))


# --------------------------------------------------------------------------- Messidor

_MESSIDOR_COLUMNS = ("image name", "retinopathy grade", "risk of macular edema")
#: ``BaseXY`` (department X = 1–3, part Y); the same pattern ends ``Annotation_BaseXY``.
_MESSIDOR_BASE = re.compile(r"base_?(?P<base>[1-3]\d)$", re.IGNORECASE)


def _read_spreadsheet(path: Path) -> list[dict[str, str]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    reader = {".xls": "xlrd", ".xlsx": "openpyxl"}[suffix]
    if importlib.util.find_spec(reader) is None:
        raise DataFormatError(
            f"cannot read {path}: {suffix} files need the optional package {reader!r}, which "
            "is not installed (wslbench does not depend on it); export the sheet to CSV with "
            "the columns 'Image name', 'Retinopathy grade', 'Risk of macular edema' and "
            "put the .csv next to the images"
        )
    import pandas as pd

    try:  # pragma: no cover - only where the optional reader is installed
        frame = pd.read_excel(path, dtype=str)
    except Exception as exc:  # pragma: no cover
        raise DataFormatError(f"cannot read spreadsheet {path}: {exc}") from exc
    frame = frame.fillna("")  # pragma: no cover
    return [{_norm(str(k)): str(v).strip() for k, v in r.items()}  # pragma: no cover
            for r in frame.to_dict(orient="records")]


def _messidor_base(sheet: Path, image: Path, root: Path) -> int | None:
    """Base number ``XY`` of ``Annotation_BaseXY`` or of a ``BaseXY`` folder of the image."""
    m = _MESSIDOR_BASE.search(sheet.stem)
    if m is not None:
        return int(m.group("base"))
    if image.is_relative_to(root):
        for part in reversed(image.relative_to(root).parent.parts):
            m = _MESSIDOR_BASE.fullmatch(part)
            if m is not None:
                return int(m.group("base"))
    return None


def load_messidor(
    root: str | Path,
    annotations: Sequence[str | Path] | None = None,
    *,
    duplicates: Iterable[str] | None = None,
) -> DRDataset:
    """Read Messidor images and their annotation spreadsheets, all bases merged.

    Each spreadsheet's images are looked up first in the spreadsheet's own folder (its
    base, searched recursively), then anywhere under ``root``. An image listed in more
    than one row is an error (name it in ``duplicates`` to drop it).

    Args:
        root: folder holding the images (searched recursively, e.g. ``Base11/...tif``).
        annotations: spreadsheet files; default every ``Annotation*.csv|xls|xlsx`` under
            ``root`` (a CSV and a spreadsheet with the same stem: the CSV is used).
        duplicates: image names (with or without extension) to drop, e.g. the duplicate
            images of the Messidor errata (Arora et al., section 4.1: 1200 images, 1187
            after errata). Names that no spreadsheet lists are ignored, so one errata
            list serves any subset of bases.

    Returns:
        A :class:`DRDataset` with ``grade`` = retinopathy grade 0–3, ``referable`` =
        grade ≥ 2 (R2/R3), ``labels["macular_edema_risk"]`` 0–2 and, when the base is
        known from ``Annotation_BaseXY`` or a ``BaseXY`` folder, ``labels["base"]`` = XY
        and ``labels["hospital"]`` = X − 1 (department 0–2); eye and patient unknown.
    """
    root = _check_root(root, "Messidor")
    if isinstance(duplicates, str):
        raise InvalidInputError(
            f"duplicates must be a list of image names, got the single string {duplicates!r}"
        )
    dropped = {Path(str(d)).stem for d in duplicates} if duplicates is not None else set()
    if annotations is None:
        sheets: dict[tuple[Path, str], Path] = {}
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix.lower() in (".csv", ".xls", ".xlsx") \
                    and f.name.lower().startswith("annotation"):
                key = (f.parent, f.stem)
                if key not in sheets or f.suffix.lower() == ".csv":
                    sheets[key] = f
        paths = sorted(sheets.values())
    else:
        paths = [Path(a) for a in annotations]
    if not paths:
        raise DataFormatError(
            f"no Messidor annotation file (Annotation_BaseXX.csv/.xls) found under {root}; "
            "expected one with columns 'Image name', 'Retinopathy grade', "
            "'Risk of macular edema'"
        )
    files = _index_images(root, recursive=True)
    by_name = {p.name: p for p in files.values()}
    records = []
    seen: dict[str, Path] = {}
    for sheet in paths:
        if not sheet.is_file():
            raise DataNotFoundError(f"Messidor annotation file {sheet} does not exist; expected a .csv/.xls/.xlsx file")
        if sheet.suffix.lower() not in (".csv", ".xls", ".xlsx"):
            raise DataFormatError(f"{sheet}: expected a .csv, .xls or .xlsx annotation file")
        rows = _read_spreadsheet(sheet)
        if not rows:
            raise DataFormatError(f"{sheet} has no rows; expected one row per image")
        _require_columns(rows, _MESSIDOR_COLUMNS, sheet)
        local = _index_images(sheet.parent, recursive=True) \
            if sheet.parent.resolve().is_relative_to(root.resolve()) else {}
        local_by_name = {p.name: p for p in local.values()}
        for row in rows:
            name = row["image name"]
            image_id = Path(name).stem
            if image_id in dropped:
                continue
            if image_id in seen:
                raise DataFormatError(
                    f"image {name!r} is listed twice ({seen[image_id]} and {sheet}); expected "
                    "one row per image, or pass its name in duplicates=[...] to drop it"
                )
            seen[image_id] = sheet
            path = (local_by_name.get(name) or local.get(image_id)
                    or by_name.get(name) or files.get(image_id))
            if path is None:
                raise DataFormatError(f"{sheet}: image {name!r} not found under {root}")
            grade = _int_field(row, "retinopathy grade", sheet, range(4))
            labels = {"macular_edema_risk": _int_field(row, "risk of macular edema", sheet,
                                                       range(3))}
            base = _messidor_base(sheet, path, root)
            if base is not None:
                labels.update(base=base, hospital=base // 10 - 1)
            records.append(DRRecord(image_id=image_id, path=path, patient_id=image_id,
                                    grade=grade, referable=grade >= 2, labels=labels))
    return DRDataset("messidor", root, tuple(sorted(records, key=lambda r: r.image_id)))
