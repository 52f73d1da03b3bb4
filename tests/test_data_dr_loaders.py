"""Real DR data set loaders on tiny fixture folders in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wslbench.data import (
    LESION_TYPES,
    load_confidence_map,
    load_diaretdb1,
    load_fundus_image,
    load_kaggle_dr,
    load_messidor,
)
from wslbench.errors import DataFormatError, DataNotFoundError


def _write_rgb(path: Path, value: int = 120, size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = value
    arr[2:6, 3:7, 1] = 200
    Image.fromarray(arr).save(path)


def _kaggle(tmp_path: Path, in_train: bool = True) -> Path:
    root = tmp_path / "kaggle"
    img_dir = root / "train" if in_train else root
    labels = {"10_left": 0, "10_right": 2, "13_left": 4, "13_right": 1, "15_left": 3}
    for name in labels:
        _write_rgb(img_dir / f"{name}.jpeg")
    root.mkdir(exist_ok=True)
    (root / "trainLabels.csv").write_text(
        "image,level\n" + "".join(f"{k},{v}\n" for k, v in labels.items())
    )
    return root


@pytest.mark.parametrize("in_train", [True, False])
def test_kaggle_records_pairing_and_lazy_images(tmp_path: Path, in_train: bool) -> None:
    ds = load_kaggle_dr(_kaggle(tmp_path, in_train))
    assert ds.name == "kaggle_dr" and len(ds) == 5
    by_id = {r.image_id: i for i, r in enumerate(ds)}
    rec = ds[by_id["10_right"]]
    assert (rec.patient_id, rec.eye, rec.grade, rec.referable) == ("10", "right", 2, True)
    assert ds[by_id["13_right"]].referable is False
    assert ds.contralateral(by_id["10_right"]) == by_id["10_left"]
    assert ds.contralateral(by_id["15_left"]) is None
    assert sorted(ds.patients()) == ["10", "13", "15"]
    assert list(ds.grades()) == [0, 2, 4, 1, 3]
    img = ds.load_image(0)
    assert img.shape == (10, 12, 3) and img.dtype == np.float32
    assert abs(img[8, 1, 0] - 120 / 255) < 0.08  # JPEG is lossy (chroma subsampling)
    assert img[8, 1, 2] < 0.1  # RGB order kept: blue stays dark


def test_kaggle_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_kaggle_dr(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="trainLabels.csv"):
        load_kaggle_dr(empty)
    root = _kaggle(tmp_path)
    (root / "trainLabels.csv").write_text("name,grade\n10_left,0\n")
    with pytest.raises(DataFormatError, match="column"):
        load_kaggle_dr(root)
    (root / "trainLabels.csv").write_text("image,level\n10_left,7\n")
    with pytest.raises(DataFormatError, match="level"):
        load_kaggle_dr(root)
    (root / "trainLabels.csv").write_text("image,level\n10_left,0\n99_left,1\n")
    with pytest.raises(DataFormatError, match="no file"):
        load_kaggle_dr(root)
    assert len(load_kaggle_dr(root, missing="skip")) == 1
    (root / "train" / "10_left.jpeg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ds = load_kaggle_dr(root, missing="skip")  # lazy: the listing still works
    with pytest.raises(DataFormatError, match="cannot read image"):
        ds.load_image(0)


def _diaretdb1(tmp_path: Path) -> Path:
    root = tmp_path / "diaretdb1_v_1_1"
    images = root / "resources" / "images"
    gt = images / "ddb1_groundtruth"
    folders = ("redsmalldots", "hemorrhages", "hardexudates", "softexudates")
    # image001: MA confidence 0.9 (> 0.75) and hemorrhage 0.5; image002: all 0.75 exactly
    peaks = {"image001": (230, 128, 0, 0), "image002": (191, 191, 191, 191),
             "image003": (0, 0, 255, 200)}
    for name, values in peaks.items():
        _write_rgb(images / "ddb1_fundusimages" / f"{name}.png")
        for folder, v in zip(folders, values):
            m = np.zeros((10, 12), np.uint8)
            m[4:6, 4:6] = v
            m[0, 0] = min(v, 60)
            (gt / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(gt / folder / f"{name}.png")
    (root / "resources" / "traindatasets").mkdir(parents=True)
    (root / "resources" / "traindatasets" / "trainset.txt").write_text(
        "images/ddb1_fundusimages/image001.png\nimages/ddb1_fundusimages/image003.png\n"
    )
    return root


def test_diaretdb1_image_level_protocol(tmp_path: Path) -> None:
    root = _diaretdb1(tmp_path)
    for given in (root, root.parent):  # the data set folder or its parent
        ds = load_diaretdb1(given)
        assert [r.image_id for r in ds] == ["image001", "image002", "image003"]
    r1, r2, r3 = ds.records
    assert set(r1.labels) == set(LESION_TYPES)
    assert r1.labels == {"microaneurysm": 1, "hemorrhage": 0, "hard_exudate": 0,
                         "cotton_wool": 0}
    assert r1.scores["microaneurysm"] == pytest.approx(230 / 255)
    assert all(v == 0 for v in r2.labels.values())  # 191/255 ≈ 0.749 is not above 75 %
    assert r3.labels == {"microaneurysm": 0, "hemorrhage": 0, "hard_exudate": 1,
                         "cotton_wool": 1}
    assert r1.grade is None and r1.eye is None
    train = load_diaretdb1(root, split="train")
    assert [r.image_id for r in train] == ["image001", "image003"]
    with pytest.raises(DataNotFoundError, match="test split"):
        load_diaretdb1(root, split="test")
    conf = load_confidence_map(root / "resources/images/ddb1_groundtruth/redsmalldots/image001.png")
    assert conf.shape == (10, 12) and conf.max() == pytest.approx(230 / 255)
    assert ds.load_image(2).shape == (10, 12, 3)


def test_diaretdb1_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        load_diaretdb1(tmp_path / "missing")
    wrong = tmp_path / "wrong"
    (wrong / "images").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="layout"):
        load_diaretdb1(wrong)
    root = _diaretdb1(tmp_path)
    (root / "resources/images/ddb1_groundtruth/softexudates/image002.png").unlink()
    with pytest.raises(DataFormatError, match="ground truth"):
        load_diaretdb1(root)
    (root / "resources/images/ddb1_groundtruth/hemorrhages/image001.png").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="cannot read image"):
        load_diaretdb1(root, split="train")


def _messidor(tmp_path: Path) -> Path:
    root = tmp_path / "messidor"
    for name in ("20051019_38557_0100_PP.tif", "20051020_43808_0100_PP.tif"):
        _write_rgb(root / "Base11" / name)
    (root / "Base11" / "Annotation_Base11.csv").write_text(
        "Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema \n"
        "20051019_38557_0100_PP.tif,Service Ophtalmologie Lariboisière,0,0\n"
        "20051020_43808_0100_PP.tif,Service Ophtalmologie Lariboisière,3,2\n",
        encoding="utf-8",
    )
    return root


def test_messidor_csv(tmp_path: Path) -> None:
    ds = load_messidor(_messidor(tmp_path))
    assert len(ds) == 2 and ds.name == "messidor"
    a, b = ds.records
    assert (a.grade, a.referable, a.labels["macular_edema_risk"]) == (0, False, 0)
    assert (b.grade, b.referable, b.labels["macular_edema_risk"]) == (3, True, 2)
    assert b.path.suffix == ".tif" and ds.load_image(1).shape == (10, 12, 3)


def test_messidor_errors(tmp_path: Path) -> None:
    import importlib.util

    with pytest.raises(DataNotFoundError):
        load_messidor(tmp_path / "none")
    root = _messidor(tmp_path)
    sheet = root / "Base11" / "Annotation_Base11.csv"
    text = sheet.read_text(encoding="utf-8")
    sheet.write_text(text.replace("Retinopathy grade", "Grade"), encoding="utf-8")
    with pytest.raises(DataFormatError, match="retinopathy grade"):
        load_messidor(root)
    sheet.write_text(text.replace("_PP.tif,Service Ophtalmologie Lariboisière,3", "_XX.tif,S,3"),
                     encoding="utf-8")
    with pytest.raises(DataFormatError, match="not found"):
        load_messidor(root)
    sheet.unlink()
    with pytest.raises(DataFormatError, match="annotation"):
        load_messidor(root)
    if importlib.util.find_spec("xlrd") is None:
        xls = root / "Base11" / "Annotation_Base11.xls"
        xls.write_bytes(b"\xd0\xcf\x11\xe0 fake xls")
        with pytest.raises(DataFormatError, match="CSV"):
            load_messidor(root)


def test_load_fundus_image_grey_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((5, 7), 51, np.uint8)).save(path)
    img = load_fundus_image(path)
    assert img.shape == (5, 7, 3) and np.allclose(img, 0.2)
    with pytest.raises(DataNotFoundError):
        load_fundus_image(tmp_path / "nope.png")
    (tmp_path / "trunc.png").write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataFormatError):
        load_fundus_image(tmp_path / "trunc.png")
