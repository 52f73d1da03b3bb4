"""Real data of Arora et al. 4.1: Messidor's bases (merged, duplicates dropped) and a folder of
unlabelled images (the Messidor Extension)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wslbench.data import UNLABELLED_SUFFIXES, load_messidor, load_unlabelled_folder
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError


def _write(path: Path, value: int, size: tuple[int, int] = (9, 7), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "extension"
    _write(root / "b.png", 51)
    _write(root / "a.PNG", 102)
    _write(root / "sub" / "c.tif", 153, mode="L")
    _write(root / "sub" / "deeper" / "d.bmp", 204)
    _write(root / "e.jpeg", 255)
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "labels.csv").write_text("x\n")
    _write(root / ".hidden" / "f.png", 10)
    _write(root / "._g.jpg", 10)
    return root


def test_lists_recursively_sorted_and_loads_lazily(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    ds = load_unlabelled_folder(root)
    assert ds.names == ("a.PNG", "b.png", "e.jpeg", "sub/c.tif", "sub/deeper/d.bmp")
    assert len(ds) == 5 and ds.root == root
    img = ds[1]
    assert img.shape == (7, 9, 3) and img.dtype == np.float32 and np.allclose(img, 0.2)
    assert np.allclose(ds.load_image(3), 0.6)  # grey TIFF replicated to RGB
    assert np.allclose(ds[-1], 0.8)
    assert [float(x.mean()) for x in ds][0] == pytest.approx(0.4)
    flat = load_unlabelled_folder(root, recursive=False)
    assert flat.names == ("a.PNG", "b.png", "e.jpeg")
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"} == set(UNLABELLED_SUFFIXES)


def test_errors_missing_empty_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_unlabelled_folder(tmp_path / "nope")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(DataNotFoundError, match="no image file"):
        load_unlabelled_folder(empty)
    _write(empty / "sub" / "ok.png", 3)
    with pytest.raises(DataNotFoundError, match="no image file"):
        load_unlabelled_folder(empty, recursive=False)
    (empty / "bad.jpg").write_bytes(b"not a jpeg at all")
    ds = load_unlabelled_folder(empty)  # listing does not read the files
    assert ds.names == ("bad.jpg", "sub/ok.png")
    with pytest.raises(DataFormatError, match="cannot read image"):
        ds.load_image(0)
    with pytest.raises(InvalidInputError, match="index"):
        ds.load_image(2)
    (empty / "sub" / "ok.png").unlink()
    with pytest.raises(DataNotFoundError):
        ds.load_image(1)


_HEADER = "Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema \n"


def _messidor(tmp_path: Path) -> Path:
    """Three bases of three departments; Base31 repeats an image of Base11 (a duplicate)."""
    root = tmp_path / "messidor"
    sheets = {
        "Base11": [("20051019_38557_0100_PP.tif", 0, 0), ("20051020_43808_0100_PP.tif", 3, 2)],
        "Base21": [("20060522_45031_0100_PP.tif", 1, 0), ("20051019_38557_0100_PP.tif", 2, 1)],
        "Base31": [("20060411_58550_0200_PP.tif", 2, 1), ("20060412_60366_0200_PP.tif", 0, 0)],
    }
    for base, rows in sheets.items():
        for k, (name, _, _) in enumerate(rows):
            _write(root / base / name, 30 * int(base[-2]) + k)
        (root / base / f"Annotation_{base}.csv").write_text(
            _HEADER + "".join(f"{n},Dept,{g},{e}\n" for n, g, e in rows), encoding="utf-8"
        )
    return root


def test_messidor_bases_merged_with_hospital_and_duplicates(tmp_path: Path) -> None:
    root = _messidor(tmp_path)
    # The same file name in two bases is listed twice: an error naming it ...
    with pytest.raises(DataFormatError, match="20051019_38557_0100_PP.tif.*listed twice"):
        load_messidor(root)
    # ... dropped (both rows) when given as a duplicate; names without extension work too,
    # and names that no sheet lists are ignored.
    ds = load_messidor(root, duplicates=["20051019_38557_0100_PP", "not_in_any_base.tif"])
    assert [r.image_id for r in ds] == [
        "20051020_43808_0100_PP", "20060411_58550_0200_PP", "20060412_60366_0200_PP",
        "20060522_45031_0100_PP",
    ]
    by_id = {r.image_id: r for r in ds}
    rec = by_id["20060522_45031_0100_PP"]
    assert (rec.grade, rec.labels) == (1, {"macular_edema_risk": 0, "base": 21, "hospital": 1})
    assert by_id["20051020_43808_0100_PP"].labels["hospital"] == 0
    assert by_id["20060411_58550_0200_PP"].labels == {"macular_edema_risk": 1, "base": 31,
                                                      "hospital": 2}
    assert [r.grade for r in ds] == [3, 2, 0, 1]
    assert np.allclose(ds.load_image(3), 60 / 255)  # read lazily from its file
    with pytest.raises(InvalidInputError, match="list of image names"):
        load_messidor(root, duplicates="20051019_38557_0100_PP.tif")


def test_messidor_image_resolved_in_its_own_base(tmp_path: Path) -> None:
    root = _messidor(tmp_path)
    sheet = root / "Base21" / "Annotation_Base21.csv"
    sheet.write_text(_HEADER + "20051019_38557_0100_PP.tif,Dept,2,1\n", encoding="utf-8")
    (root / "Base11" / "Annotation_Base11.csv").unlink()
    ds = load_messidor(root, annotations=[sheet])
    assert len(ds) == 1 and ds[0].path.parent.name == "Base21"  # not Base11's file
    assert np.allclose(ds.load_image(0), 61 / 255)
    assert ds[0].labels["base"] == 21
    # Without a BaseXY name anywhere, no base or hospital label is made up.
    plain = tmp_path / "plain"
    _write(plain / "img1.tif", 9)
    (plain / "Annotation.csv").write_text(_HEADER + "img1.tif,Dept,0,0\n", encoding="utf-8")
    assert load_messidor(plain)[0].labels == {"macular_edema_risk": 0}
    # A merged sheet at the top: the base comes from the image's BaseXY folder.
    _write(plain / "Base12" / "img2.tif", 9)
    (plain / "Annotation.csv").write_text(_HEADER + "img1.tif,Dept,0,0\nimg2.tif,Dept,1,0\n",
                                          encoding="utf-8")
    merged = load_messidor(plain)
    assert [r.labels.get("base") for r in merged] == [None, 12]
    assert merged[1].labels["hospital"] == 0
