"""Real histology data set loaders on tiny fixture folders in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from wslbench.data import (
    BACH_CLASSES,
    load_bach,
    load_breakhis,
    load_glas,
    load_histology_image,
)
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError


def _rgb(value: int, size: tuple[int, int] = (12, 10)) -> np.ndarray:
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = value
    arr[2:6, 3:7, 2] = 200
    return arr


# --------------------------------------------------------------------------- GlaS

GLAS = {"train_1": "malignant", "train_2": "benign", "testA_1": "benign", "testB_3": "malignant"}


def _glas(tmp_path: Path) -> Path:
    root = tmp_path / "Warwick QU Dataset (Released 2016_07_08)"
    root.mkdir()
    for i, name in enumerate(GLAS):
        Image.fromarray(_rgb(40 * i + 20)).save(root / f"{name}.bmp")
        anno = np.zeros((10, 12), np.uint8)
        anno[1:4, 1:4] = 1
        anno[6:9, 5:11] = 2
        Image.fromarray(anno).save(root / f"{name}_anno.bmp")
    # The real header and values carry leading spaces.
    lines = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    lines += [f"{n},{i + 1}, {g}, {'adenomatous' if g == 'benign' else 'moderately differentated'}"
              for i, (n, g) in enumerate(GLAS.items())]
    (root / "Grade.csv").write_text("\n".join(lines) + "\n")
    return root


def test_glas_records_masks_and_splits(tmp_path: Path) -> None:
    ds = load_glas(_glas(tmp_path))
    assert ds.name == "glas" and len(ds) == 4 and ds.class_names == ("benign", "malignant")
    by_id = {s.image_id: i for i, s in enumerate(ds)}
    s = ds[by_id["train_1"]]
    assert (s.label, s.class_name, s.split, s.patient_id) == (1, "malignant", "train", "1")
    assert s.tumour_type == "moderately differentated"
    assert ds[by_id["testA_1"]].label == 0 and ds[by_id["testB_3"]].split == "testB"
    assert sorted(ds.select(split="testA") + ds.select(split="testB")) == sorted(
        [by_id["testA_1"], by_id["testB_3"]])
    img = ds.load_image(by_id["train_2"])
    assert img.shape == (10, 12, 3) and img.dtype == np.float32
    assert abs(img[0, 0, 0] - 60 / 255) < 1e-6 and img[3, 4, 2] == pytest.approx(200 / 255)
    inst = ds.load_mask(0, instances=True)
    assert inst.dtype == np.int32 and sorted(np.unique(inst)) == [0, 1, 2]
    mask = ds.load_mask(0)
    assert mask.dtype == bool and mask.sum() == 9 + 18
    assert list(ds.labels()) == [ds[i].label for i in range(4)]


def test_glas_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        load_glas(tmp_path / "nowhere")
    root = _glas(tmp_path)
    (root / "testB_3_anno.bmp").unlink()
    with pytest.raises(DataFormatError, match="testB_3_anno.bmp"):
        load_glas(root)
    (root / "Grade.csv").write_text("name, grade (GlaS)\ntrain_1, cancer\n")
    with pytest.raises(DataFormatError, match="benign"):
        load_glas(root)
    (root / "Grade.csv").unlink()
    with pytest.raises(DataNotFoundError, match="Grade.csv"):
        load_glas(root)


# --------------------------------------------------------------------------- BreakHis

BREAKHIS = [
    ("benign", "adenosis", "A", "14-22549AB", 40, 1),
    ("benign", "adenosis", "A", "14-22549AB", 100, 1),
    ("malignant", "ductal_carcinoma", "DC", "14-2523", 40, 2),
    ("malignant", "ductal_carcinoma", "DC", "14-2523", 400, 7),
]


def _breakhis(tmp_path: Path, folds: bool = True) -> Path:
    root = tmp_path / "breakhis"
    rels = []
    for cls, folder, code, patient, mag, seq in BREAKHIS:
        c = cls[0].upper()
        rel = (Path("BreaKHis_v1/histology_slides/breast") / cls / "SOB" / folder
               / f"SOB_{c}_{code}_{patient}" / f"{mag}X" / f"SOB_{c}_{code}-{patient}-{mag}-{seq:03d}.png")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(100 + seq)).save(root / rel)
        rels.append(rel)
    if folds:
        rows = ["fold,mag,grp,filename"]
        for fold in (1, 2):
            for k, (rel, item) in enumerate(zip(rels, BREAKHIS)):
                grp = "test" if (k + fold) % 2 == 0 else "train"
                rows.append(f"{fold},{item[4]},{grp},{rel.as_posix()}")
        (root / "Folds.csv").write_text("\n".join(rows) + "\n")
    return root


def test_breakhis_parses_names_and_folds(tmp_path: Path) -> None:
    ds = load_breakhis(_breakhis(tmp_path))
    assert ds.name == "breakhis" and len(ds) == 4
    by_id = {s.image_id: s for s in ds}
    s = by_id["SOB_B_A-14-22549AB-40-001"]
    assert (s.label, s.class_name, s.tumour_type, s.patient_id, s.magnification) == (
        0, "benign", "adenosis", "14-22549AB", 40)
    m = by_id["SOB_M_DC-14-2523-400-007"]
    assert (m.label, m.tumour_type, m.magnification) == (1, "ductal_carcinoma", 400)
    assert s.folds == {1: "train", 2: "test"}
    assert len(ds.select(magnification=40)) == 2
    test1 = ds.select(fold=1, group="test")
    assert {ds[i].image_id for i in test1} == {"SOB_B_A-14-22549AB-100-001",
                                               "SOB_M_DC-14-2523-400-007"}
    assert ds.load_image(0).shape == (10, 12, 3)
    with pytest.raises(InvalidInputError, match="together"):
        ds.select(fold=1)
    with pytest.raises(InvalidInputError, match="no pixel annotation"):
        ds.load_mask(0)
    # The folds file is optional; the breast folder itself is accepted as root.
    bare = load_breakhis(_breakhis(tmp_path / "b", folds=False)
                         / "BreaKHis_v1" / "histology_slides" / "breast")
    assert len(bare) == 4 and all(not s.folds for s in bare)


def test_breakhis_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="BreakHis layout"):
        load_breakhis(tmp_path)
    root = _breakhis(tmp_path)
    bad = next(root.rglob("*-40-001.png"))
    bad.rename(bad.with_name("SOB_M_A-14-22549AB-40-001.png"))  # malignant in benign/
    with pytest.raises(DataFormatError, match="folders say"):
        load_breakhis(root)
    next(root.rglob("SOB_M_A-*.png")).rename(bad.with_name("image1.png"))
    with pytest.raises(DataFormatError, match="SOB_"):
        load_breakhis(root)


# --------------------------------------------------------------------------- BACH


def _bach(tmp_path: Path) -> Path:
    photos = tmp_path / "ICIAR2018_BACH_Challenge" / "Photos"
    for folder, prefix in (("Normal", "n"), ("Benign", "b"), ("InSitu", "is"),
                           ("Invasive", "iv")):
        (photos / folder).mkdir(parents=True)
        for k in (1, 2):
            tifffile.imwrite(photos / folder / f"{prefix}{k:03d}.tif", _rgb(30 * k))
    return tmp_path


def test_bach_classes_and_tiff_images(tmp_path: Path) -> None:
    ds = load_bach(_bach(tmp_path))
    assert ds.name == "bach" and len(ds) == 8 and ds.class_names == BACH_CLASSES
    by_id = {s.image_id: s for s in ds}
    assert by_id["n001"].label == 0 and by_id["b002"].class_name == "benign"
    assert by_id["is001"].label == 2 and by_id["iv002"].class_name == "invasive"
    assert sorted(ds.labels().tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    img = ds.load_image(0)
    assert img.shape == (10, 12, 3) and img.dtype == np.float32
    assert img[0, 0, 0] == pytest.approx(30 / 255)


def test_bach_and_image_errors(tmp_path: Path) -> None:
    (tmp_path / "Photos" / "Normal").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="BACH part A layout"):
        load_bach(tmp_path)
    root = _bach(tmp_path / "x")
    corrupt = next(root.rglob("n001.tif"))
    corrupt.write_bytes(b"II*\x00 not a tiff at all")
    ds = load_bach(root)
    with pytest.raises(DataFormatError, match="cannot read TIFF"):
        ds.load_image(next(i for i, s in enumerate(ds) if s.image_id == "n001"))
    png = tmp_path / "broken.png"
    png.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataFormatError):
        load_histology_image(png)
    with pytest.raises(DataNotFoundError):
        load_histology_image(tmp_path / "missing.png")
