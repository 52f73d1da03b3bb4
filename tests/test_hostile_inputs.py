"""Hostile inputs for every public loader and entry point (issue 10, item 1).

Each case builds one bad input in ``tmp_path`` and either

* ``reject``: the call must raise a :class:`~wslbench.errors.WslbenchError` whose
  message names the problem (``match``, a regular expression) and says what was
  expected (the word "expected"), never a bare NumPy/Pillow/nibabel/torch error; or
* ``accept``: the input is legitimate (a 16-bit PNG, a grey image where RGB is
  expected...) and must load *correctly* (``check`` asserts the values).

A ``SIGALRM`` watchdog turns any hang into a failure. Case ids read as
``<family>-<input>``; a comment above each accepted case says why it is legitimate.
Counts: ``len(REJECTS) + len(CLI_CASES)`` rejected, ``len(ACCEPTS)`` accepted.
"""

from __future__ import annotations

import gzip
import importlib
import re
import signal
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from wslbench import cli
from wslbench.attacks import ATTACKS
from wslbench.attacks.base import check_attack_input
from wslbench.attribution import create_attribution
from wslbench.data import camelyon_patches as cam
from wslbench.data import cohort_tsv, dr_loaders, fundus_preprocess, histology_loaders, nifti
from wslbench.data.parcellation import load_parcellation
from wslbench.data.unlabelled import load_unlabelled_folder
from wslbench.errors import WslbenchError
from wslbench.experiments import adversarial, dr, mri, ssl, wsl
from wslbench.losses import create_size_loss
from wslbench.losses.sparsity import SparsityEnhancedLoss
from wslbench.models import create_dr_net, create_ssl_model
from wslbench.pooling import create_pooling
from wslbench.runner.grid import load_grid
from wslbench.training.checkpoint import load_checkpoint, load_state_dict

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "notebooks" / "tiny.ipynb"
Build = Callable[[Path], Callable[[], Any]]


@dataclass(frozen=True)
class Case:
    """One hostile input: ``build(tmp) -> call``; ``match`` for rejects, ``check`` for accepts."""

    id: str
    build: Build
    match: str | None = None
    check: Callable[[Any], None] | None = None


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    """Fail (instead of hanging) when one case takes more than 30 s."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("hostile input case hung for more than 30 s")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- file builders

RNG = np.random.default_rng(0)
RGB = (RNG.random((32, 32, 3)) * 255).astype(np.uint8)


def _save(tmp: Path, name: str, arr: np.ndarray, mode: str | None = None) -> Path:
    path = tmp / name
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(path)
    return path


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def _png_claiming(tmp: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR (and its CRC) is patched to claim ``width × height``."""
    data = _save(tmp, "small.png", RGB).read_bytes()
    i = data.index(b"IHDR")
    body = struct.pack(">II", width, height) + data[i + 12:i + 17]
    patched = data[:i + 4] + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + data[i + 21:]
    path = tmp / f"claims_{width}x{height}.png"
    path.write_bytes(patched)
    return path


def _tiff_claiming(tmp: Path, width: int, height: int, compression: str | None = None) -> Path:
    """A tiny TIFF whose ImageWidth/ImageLength tags are patched to ``width × height``."""
    path = tmp / f"claims_{width}x{height}.tif"
    tifffile.imwrite(path, RGB, photometric="rgb", compression=compression)
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for name, value in (("ImageWidth", width), ("ImageLength", height)):
            tag = tags[name]
            fmt = "<H" if tag.dtype == 3 else "<I"
            data[tag.valueoffset:tag.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


def _float_tiff(tmp: Path, value: float, channels: int = 1) -> Path:
    arr = np.full((16, 16) if channels == 1 else (16, 16, channels), value, np.float32)
    path = tmp / f"float_{value}_{channels}.tif"
    tifffile.imwrite(path, arr, photometric="minisblack" if channels == 1 else "rgb")
    return path


def _file(name: str, data: bytes) -> Build:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return build


# --------------------------------------------------------------------------- image cases

IMAGE_LOADERS = {
    "fundus": dr_loaders.load_fundus_image,
    "histology": histology_loaders.load_histology_image,
    "confidence": dr_loaders.load_confidence_map,
}

BAD_IMAGE_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated-png": (lambda t: _cut(_save(t, "a.png", RGB)), r"a\.png|truncated|cannot read"),
    "truncated-jpeg": (lambda t: _cut(_save(t, "a.jpg", RGB)), r"cannot read"),
    "truncated-tiff": (lambda t: _cut(_save(t, "a.tif", RGB)), r"cannot read"),
    "zero-byte-png": (_file("empty.png", b""), r"cannot read"),
    "zero-byte-jpeg": (_file("empty.jpg", b""), r"cannot read"),
    "zero-byte-tiff": (_file("empty.tif", b""), r"cannot read"),
    "png-magic-then-garbage": (_file("junk.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
                               r"cannot read"),
    "text-file-named-png": (_file("notes.png", b"hello, not an image\n"), r"cannot read"),
    "png-header-20000x20000": (lambda t: _png_claiming(t, 20000, 20000), r"pixels"),
    "png-header-11000x11000": (lambda t: _png_claiming(t, 11000, 11000), r"11000×11000"),
    "tiff-header-20000x20000": (lambda t: _tiff_claiming(t, 20000, 20000), r"pixels"),
    "float-tiff-nan": (lambda t: _float_tiff(t, np.nan), r"NaN or infinite"),
    "float-tiff-inf": (lambda t: _float_tiff(t, np.inf), r"NaN or infinite"),
    "missing-file": (lambda t: t / "absent.png", r"does not exist"),
    "a-folder": (lambda t: t, r"does not exist"),
}


def _image_reject(loader: str, make: Callable[[Path], Path]) -> Build:
    return lambda tmp: (lambda: IMAGE_LOADERS[loader](make(tmp)))


IMAGE_REJECTS = [
    Case(f"image-{loader}-{name}", _image_reject(loader, make), match)
    for loader in IMAGE_LOADERS
    for name, (make, match) in BAD_IMAGE_FILES.items()
]
IMAGE_REJECTS += [
    Case("image-histology-rgb-float-tiff-nan",
         lambda t: lambda: histology_loaders.load_histology_image(_float_tiff(t, np.nan, 3)),
         r"NaN or infinite"),
    Case("image-histology-2-channel-tiff",
         lambda t: lambda: histology_loaders.load_histology_image(
             _tiff(t, np.zeros((16, 16, 2), np.uint8))), r"shape \(16, 16, 2\)"),
    Case("image-unlabelled-folder-corrupt-file",
         lambda t: lambda: load_unlabelled_folder(
             _cut(_save(t, "x.png", RGB)).parent).load_image(0), r"cannot read"),
    Case("image-unlabelled-empty-folder", lambda t: lambda: load_unlabelled_folder(t),
         r"no image file"),
]


def _tiff(tmp: Path, arr: np.ndarray) -> Path:
    path = tmp / "planes.tif"
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    return path


def _close(expected: np.ndarray, atol: float = 1e-6) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        assert out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_allclose(out, expected, atol=atol)

    return check


GREY = (RNG.random((16, 16)) * 255).astype(np.uint8)
GREY16 = (RNG.random((16, 16)) * 65535).astype(np.uint16)
RGB16 = (RNG.random((16, 16, 3)) * 65535).astype(np.uint16)
RGBA = np.dstack([RGB[:16, :16], np.full((16, 16), 7, np.uint8)])

IMAGE_ACCEPTS = [
    # 1 channel where 3 are expected: grey is replicated to RGB.
    Case("image-fundus-1-channel-png-replicated",
         lambda t: lambda: dr_loaders.load_fundus_image(_save(t, "g.png", GREY)),
         check=_close(np.repeat(GREY[..., None] / 255.0, 3, axis=2))),
    # 2 channels (grey + alpha): the alpha is dropped, grey replicated.
    Case("image-fundus-2-channel-la-png-alpha-dropped",
         lambda t: lambda: dr_loaders.load_fundus_image(_save(t, "la.png", GREY, "LA")),
         check=_close(np.repeat(GREY[..., None] / 255.0, 3, axis=2))),
    # 4 channels (RGBA): the alpha is dropped.
    Case("image-histology-4-channel-png-alpha-dropped",
         lambda t: lambda: histology_loaders.load_histology_image(_save(t, "a.png", RGBA)),
         check=_close(RGBA[..., :3] / 255.0)),
    # 16-bit grey PNG: divided by 65535, not clipped at 255.
    Case("image-fundus-16-bit-png-rescaled",
         lambda t: lambda: dr_loaders.load_fundus_image(_save(t, "g16.png", GREY16)),
         check=_close(np.repeat(GREY16[..., None] / 65535.0, 3, axis=2), atol=1e-5)),
    Case("image-confidence-16-bit-png-rescaled",
         lambda t: lambda: dr_loaders.load_confidence_map(_save(t, "g16.png", GREY16)),
         check=_close(GREY16 / 65535.0, atol=1e-5)),
    # 16-bit RGB TIFF (histology scanners): divided by 65535.
    Case("image-histology-16-bit-rgb-tiff-rescaled",
         lambda t: lambda: histology_loaders.load_histology_image(_rgb_tiff(t, RGB16)),
         check=_close(RGB16 / 65535.0, atol=1e-5)),
    # 1×1 loads (a valid file); the preprocessing entry points refuse it (below).
    Case("image-fundus-1x1-png-loads",
         lambda t: lambda: dr_loaders.load_fundus_image(_save(t, "one.png", RGB[:1, :1])),
         check=_close(RGB[:1, :1] / 255.0)),
]


def _rgb_tiff(tmp: Path, arr: np.ndarray) -> Path:
    path = tmp / "rgb16.tif"
    tifffile.imwrite(path, arr, photometric="rgb")
    return path


# --------------------------------------------------------------------------- array cases

FUNDUS = np.zeros((64, 64, 3), np.float32)
FUNDUS[8:56, 8:56] = 0.5


def _with(value: float) -> np.ndarray:
    out = FUNDUS.copy()
    out[30, 30, 1] = value
    return out


ARRAY_REJECTS = [
    Case("array-preprocess-nan", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        _with(np.nan), 32), r"NaN or infinite.*expected finite"),
    Case("array-preprocess-inf", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        _with(np.inf), 32), r"NaN or infinite"),
    Case("array-preprocess-1x1", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        np.zeros((1, 1, 3), np.float32), 32), r"\(1, 1, 3\)"),
    Case("array-preprocess-2-channels", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        np.zeros((64, 64, 2), np.float32), 32), r"\(64, 64, 2\)"),
    Case("array-preprocess-5-channels", lambda t: lambda: fundus_preprocess.as_rgb_float(
        np.zeros((64, 64, 5), np.float32)), r"\(64, 64, 5\)"),
    Case("array-preprocess-channel-axis-of-1", lambda t: lambda: fundus_preprocess.as_rgb_float(
        np.zeros((64, 64, 1), np.float32)), r"\(64, 64, 1\)"),
    Case("array-preprocess-4d", lambda t: lambda: fundus_preprocess.as_rgb_float(
        np.zeros((2, 64, 64, 3), np.float32)), r"\(2, 64, 64, 3\)"),
    Case("array-preprocess-not-an-array", lambda t: lambda: fundus_preprocess.as_rgb_float(
        [[0.0]]), r"list"),
    Case("array-preprocess-float-0-255", lambda t: lambda: fundus_preprocess.as_rgb_float(
        FUNDUS * 255), r"\[0, 1\]"),
    Case("array-preprocess-black-no-fov", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        np.zeros((64, 64, 3), np.float32), 32), r"no field of view"),
    Case("array-preprocess-bad-target-width", lambda t: lambda: fundus_preprocess.preprocess_fundus(
        FUNDUS, 8), r"target_width"),
    Case("array-augment-nan", lambda t: lambda: fundus_preprocess.augment_image(
        _with(np.nan), fundus_preprocess.sample_augmentation(0)), r"NaN|finite"),
    Case("array-slide-2-channels", lambda t: lambda: cam.open_slide(
        np.zeros((32, 32, 2), np.uint8)), r"\(32, 32, 2\)"),
    Case("array-slide-wrong-type", lambda t: lambda: cam.open_slide(3), r"int"),
    Case("array-tissue-mask-nan", lambda t: lambda: cam.tissue_mask(
        np.full((32, 32, 3), np.nan, np.float32)), r"NaN|finite"),
    Case("array-save-nifti-nan", lambda t: lambda: nifti.save_nifti(
        np.full((4, 4, 4), np.nan, np.float32), np.eye(4), t / "x.nii"), r"NaN or inf"),
    Case("array-save-nifti-2d", lambda t: lambda: nifti.save_nifti(
        np.zeros((4, 4), np.float32), np.eye(4), t / "x.nii"), r"\(4, 4\)"),
    Case("array-save-nifti-singular-affine", lambda t: lambda: nifti.save_nifti(
        np.zeros((4, 4, 4), np.float32), np.zeros((4, 4)), t / "x.nii"), r"not invertible"),
    Case("array-save-nifti-bad-suffix", lambda t: lambda: nifti.save_nifti(
        np.zeros((4, 4, 4), np.float32), np.eye(4), t / "x.png"), r"x\.png"),
    Case("array-quality-check-3d-batch", lambda t: lambda: cohort_tsv.quality_check(
        np.zeros((4, 4, 4), np.float32)), r"axes|shape"),
    Case("array-attack-input-nan", lambda t: lambda: check_attack_input(
        torch.full((2, 3), float("nan")), torch.zeros(2), 0.0, 1.0), r"NaN or Inf"),
]


# --------------------------------------------------------------------------- NIfTI cases

AFFINE = np.diag([1.5, 1.5, 1.5, 1.0])


def _nii(tmp: Path, data: np.ndarray, name: str = "v.nii") -> Path:
    path = tmp / name
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    return path


def _patched(tmp: Path, offset: int, raw: bytes, name: str = "patched.nii") -> Path:
    data = bytearray(_nii(tmp, RNG.random((4, 5, 6)).astype(np.float32)).read_bytes())
    data[offset:offset + len(raw)] = raw
    path = tmp / name
    path.write_bytes(bytes(data))
    return path


def _sform(tmp: Path, rows: np.ndarray) -> Path:
    """NIfTI whose sform (used by nibabel when sform_code > 0) is ``rows`` (3×4)."""
    data = bytearray(_nii(tmp, RNG.random((4, 5, 6)).astype(np.float32)).read_bytes())
    data[252:256] = struct.pack("<hh", 0, 2)  # qform_code 0, sform_code 2 (aligned)
    data[280:328] = struct.pack("<12f", *rows.reshape(-1))
    path = tmp / "sform.nii"
    path.write_bytes(bytes(data))
    return path


def _dims(*dims: int) -> bytes:
    return struct.pack("<8h", *dims, *([1] * (8 - len(dims))))


def _nifti(make: Callable[[Path], Path]) -> Build:
    return lambda tmp: (lambda: nifti.load_nifti(make(tmp)))


NIFTI_REJECTS = [
    Case("nifti-2d", _nifti(lambda t: _nii(t, np.zeros((4, 5), np.float32))), r"\(4, 5\).*3D"),
    Case("nifti-5d", _nifti(lambda t: _nii(t, np.zeros((4, 5, 6, 2, 2), np.float32))),
         r"\(4, 5, 6, 2, 2\)"),
    Case("nifti-4d-several-volumes", _nifti(lambda t: _nii(t, np.zeros((4, 5, 6, 3), np.float32))),
         r"singleton"),
    Case("nifti-nan-voxels", _nifti(lambda t: _nii(t, np.full((4, 5, 6), np.nan, np.float32))),
         r"non-finite voxel"),
    Case("nifti-inf-voxels", _nifti(lambda t: _nii(t, np.full((4, 5, 6), -np.inf, np.float32))),
         r"non-finite voxel"),
    Case("nifti-zero-sform-affine", _nifti(lambda t: _sform(t, np.zeros((3, 4)))),
         r"not invertible"),
    Case("nifti-rank-2-sform-affine", _nifti(lambda t: _sform(t, np.array(
        [[1.0, 0, 0, 0], [2.0, 0, 0, 0], [0, 0, 1.0, 0]]))), r"not invertible"),
    Case("nifti-nan-sform-affine", _nifti(lambda t: _sform(t, np.full((3, 4), np.nan))),
         r"non-finite|not invertible"),
    Case("nifti-truncated-nii", _nifti(lambda t: _cut(_nii(t, RNG.random((4, 5, 6)).astype(
        np.float32)), 0.8)), r"truncated"),
    Case("nifti-truncated-nii-gz", _nifti(lambda t: _cut(_nii(t, RNG.random((8, 8, 8)).astype(
        np.float32), "v.nii.gz"), 0.5)), r"truncated|corrupt"),
    Case("nifti-header-only", _nifti(lambda t: _cut(_nii(t, np.zeros((4, 5, 6), np.float32)),
                                                    0.2)), r"cannot read"),
    Case("nifti-zero-byte", _nifti(_file("empty.nii", b"")), r"cannot read"),
    Case("nifti-bad-magic", _nifti(lambda t: _patched(t, 344, b"xxxx")), r"cannot read"),
    Case("nifti-unknown-datatype", _nifti(lambda t: _patched(t, 70, struct.pack("<h", 9999))),
         r"data code|datatype|cannot read"),
    Case("nifti-dim0-9", _nifti(lambda t: _patched(t, 40, _dims(9, 4, 5, 6))), r"cannot read"),
    Case("nifti-header-20000-cubed", _nifti(lambda t: _patched(t, 40, _dims(3, 20000, 20000,
                                                                         20000))), r"voxels"),
    Case("nifti-negative-dim", _nifti(lambda t: _patched(t, 40, _dims(3, -5, 5, 6))),
         r"positive sizes"),
    Case("nifti-plain-bytes-named-gz", _nifti(lambda t: _rename(_nii(t, np.zeros(
        (4, 5, 6), np.float32)), "v.nii.gz")), r"gzip|cannot read"),
    Case("nifti-png-named-nii", _nifti(lambda t: _rename(_save(t, "p.png", RGB), "p.nii")),
         r"cannot read"),
    Case("nifti-missing", _nifti(lambda t: t / "absent.nii.gz"), r"does not exist"),
    Case("nifti-parcellation-float-labels", lambda t: lambda: load_parcellation(_nii(
        t, np.full((4, 5, 6), 0.5, np.float32))), r"label volume"),
    Case("nifti-parcellation-empty", lambda t: lambda: load_parcellation(_nii(
        t, np.zeros((4, 5, 6), np.float32))), r"no region"),
]


def _rename(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


ARRAY_ACCEPTS = [
    # A 16-bit array is divided by 65535 (not clipped at 1 after dividing by 255).
    Case("array-preprocess-16-bit-rescaled", lambda t: lambda: fundus_preprocess.as_rgb_float(
        RGB16), check=_close(RGB16 / 65535.0, atol=1e-5)),
    # A grey (H, W) array is replicated to three channels.
    Case("array-preprocess-grey-replicated", lambda t: lambda: fundus_preprocess.as_rgb_float(
        GREY), check=_close(np.repeat(GREY[..., None] / 255.0, 3, axis=2))),
]

NIFTI_ACCEPTS = [
    # A wrong sizeof_hdr is repaired by nibabel (it logs it); the voxels are intact.
    Case("nifti-wrong-sizeof-hdr-repaired", lambda t: lambda: nifti.load_nifti(
        _patched(t, 0, struct.pack("<i", 0))), check=lambda v: _finite_shape(v, (4, 5, 6))),
    # A 4D volume with one time point is a 3D volume (SPM writes such maps).
    Case("nifti-4d-singleton-squeezed", lambda t: lambda: nifti.load_nifti(_nii(
        t, np.ones((4, 5, 6, 1), np.float32))), check=lambda v: _finite_shape(v, (4, 5, 6))),
]


def _finite_shape(volume: nifti.NiftiVolume, shape: tuple[int, ...]) -> None:
    assert volume.shape == shape and np.isfinite(volume.data).all()
    np.testing.assert_allclose(volume.affine, AFFINE)


# --------------------------------------------------------------------------- table cases

HEADER = "participant_id\tsession_id\tdiagnosis\tage\tsex\tpath\n"


def _tsv(body: str | bytes, header: str = HEADER, check_files: bool = False) -> Build:
    def build(tmp: Path) -> Callable[[], Any]:
        path = tmp / "cohort.tsv"
        path.write_bytes(body if isinstance(body, bytes) else (header + body).encode())
        return lambda: cohort_tsv.load_cohort_tsv(path, check_files=check_files)

    return build


ROW = "sub-01\tses-M00\tAD\t71\tF\tmap.nii.gz\n"
TABLE_REJECTS = [
    Case("tsv-missing-column", _tsv("sub-01\tses-M00\tAD\n",
                                    "participant_id\tsession_id\tdiagnosis\n"), r"'path'"),
    Case("tsv-duplicate-session", _tsv(ROW + ROW), r"appears on data rows 1 and 2"),
    Case("tsv-age-not-a-number", _tsv(ROW.replace("71", "old")), r"'age'.*'old'"),
    Case("tsv-age-nan", _tsv(ROW.replace("71", "nan")), r"'age'"),
    Case("tsv-age-negative", _tsv(ROW.replace("71", "-3")), r"'age'"),
    Case("tsv-sex-unknown", _tsv(ROW.replace("\tF\t", "\tX\t")), r"'sex'"),
    Case("tsv-diagnosis-unknown", _tsv(ROW.replace("AD", "MCI")), r"'MCI'"),
    Case("tsv-participant-without-prefix", _tsv(ROW.replace("sub-01", "01")), r"sub-"),
    Case("tsv-header-only", _tsv(""), r"no rows"),
    Case("tsv-zero-byte", _tsv("", ""), r"cannot read|lacks"),
    Case("tsv-not-utf8", _tsv(b"\xff\xfe\x00\x81" * 50), r"cannot read|lacks"),
    Case("tsv-missing-map-files", _tsv(ROW, check_files=True), r"do not exist"),
]


def _kaggle(csv: str | bytes, files: tuple[str, ...] = ("10_left.jpeg", "10_right.jpeg")) -> Build:
    def build(tmp: Path) -> Callable[[], Any]:
        for name in files:
            _save(tmp, name, RGB)
        path = tmp / "trainLabels.csv"
        path.write_bytes(csv if isinstance(csv, bytes) else csv.encode())
        return lambda: dr_loaders.load_kaggle_dr(tmp)

    return build


def _glas(csv: str) -> Build:
    def build(tmp: Path) -> Callable[[], Any]:
        for name in ("train_1", "train_1_anno"):
            _save(tmp, f"{name}.bmp", RGB)
        (tmp / "Grade.csv").write_text(csv)
        return lambda: histology_loaders.load_glas(tmp)

    return build


TABLE_REJECTS += [
    Case("csv-kaggle-missing-level-column", _kaggle("image\n10_left\n"), r"'level'"),
    Case("csv-kaggle-level-not-int", _kaggle("image,level\n10_left,severe\n"), r"'severe'"),
    Case("csv-kaggle-level-out-of-range", _kaggle("image,level\n10_left,7\n"), r"value 7"),
    Case("csv-kaggle-duplicate-image", _kaggle("image,level\n10_left,1\n10_left,2\n"),
         r"10_left.*(twice|more than once|rows)"),
    Case("csv-kaggle-bad-image-name", _kaggle("image,level\nphoto,1\n"), r"'photo'"),
    Case("csv-kaggle-header-only", _kaggle("image,level\n"), r"no rows"),
    Case("csv-kaggle-zero-byte", _kaggle(""), r"empty"),
    Case("csv-kaggle-binary", _kaggle(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),
         r"cannot read|empty|lacks"),
    Case("csv-glas-missing-grade-column", _glas("name,patient ID\ntrain_1,1\n"), r"grade"),
    Case("csv-glas-bad-grade", _glas("name,patient ID,grade (GlaS)\ntrain_1,1,awful\n"),
         r"'awful'"),
    Case("csv-glas-duplicate-name", _glas(
        "name,patient ID,grade (GlaS)\ntrain_1,1,benign\ntrain_1,1,malignant\n"),
        r"train_1.*(twice|more than once|rows)"),
]


def _layout(*folders: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        for folder in folders:
            (tmp / folder).mkdir(parents=True)
        return tmp

    return make


def _breakhis_folds(tmp: Path, csv: str) -> Callable[[], Any]:
    _layout("benign")(tmp)
    (tmp / "Folds.csv").write_text(csv)
    return lambda: histology_loaders.load_breakhis(tmp)


def _messidor(tmp: Path, csv: str) -> Callable[[], Any]:
    _save(tmp, "img1.tif", RGB)
    (tmp / "Annotation_Base11.csv").write_text(csv)
    return lambda: dr_loaders.load_messidor(tmp)


TABLE_REJECTS += [
    Case("layout-diaretdb1-wrong", lambda t: lambda: dr_loaders.load_diaretdb1(
        _layout("resources/images")(t)), r"DiaretDB1 layout"),
    Case("layout-bach-wrong", lambda t: lambda: histology_loaders.load_bach(
        _layout("Normal", "Benign")(t)), r"BACH part A layout"),
    Case("layout-breakhis-wrong", lambda t: lambda: histology_loaders.load_breakhis(t),
         r"BreakHis layout"),
    Case("layout-kaggle-missing-folder", lambda t: lambda: dr_loaders.load_kaggle_dr(
        t / "absent"), r"does not exist"),
    Case("csv-breakhis-fold-not-int", lambda t: _breakhis_folds(
        t, "fold,mag,grp,filename\nx,40,train,a.png\n"), r"'x'"),
    Case("csv-breakhis-bad-group", lambda t: _breakhis_folds(
        t, "fold,mag,grp,filename\n1,40,dev,a.png\n"), r"'dev'"),
    Case("csv-breakhis-missing-columns", lambda t: _breakhis_folds(
        t, "fold,filename\n1,a.png\n"), r"'mag'"),
    Case("csv-messidor-missing-columns", lambda t: _messidor(
        t, "Image name,Comment\nimg1.tif,ok\n"), r"retinopathy grade"),
    Case("csv-messidor-grade-not-int", lambda t: _messidor(
        t, "Image name,Retinopathy grade,Risk of macular edema\nimg1.tif,high,0\n"), r"'high'"),
    Case("csv-messidor-duplicate-image", lambda t: _messidor(
        t, "Image name,Retinopathy grade,Risk of macular edema\nimg1.tif,1,0\nimg1.tif,2,0\n"),
        r"img1"),
]

SLIDE_REJECTS = [
    Case("slide-truncated-tiff", lambda t: lambda: cam.TiffSlide(
        _cut(_rgb_tiff(t, RGB16), 0.3)), r"cannot read|cannot decode"),
    Case("slide-zero-byte", lambda t: lambda: cam.TiffSlide(_file("s.tif", b"")(t)),
         r"cannot read"),
    Case("slide-compressed-untiled-20000x20000", lambda t: lambda: cam.TiffSlide(
        _tiff_claiming(t, 20000, 20000, compression="zlib")), r"20000×20000.*tiled"),
    Case("slide-missing", lambda t: lambda: cam.TiffSlide(t / "absent.tif"), r"does not exist"),
]


# --------------------------------------------------------------------------- grid YAML cases


def _grid(text: str | bytes, allowed: set[str] | None = None) -> Build:
    def build(tmp: Path) -> Callable[[], Any]:
        path = tmp / "grid.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return lambda: load_grid(path, allowed)

    return build


GRID_REJECTS = [
    Case("grid-unknown-top-key", _grid("preset: smoke\ngird: {nu: [1]}\n"), r"gird"),
    Case("grid-values-not-a-list", _grid("grid: {nu: 0.1}\n"), r"'nu'.*list"),
    Case("grid-empty-list", _grid("grid: {nu: []}\n"), r"'nu'.*non-empty"),
    Case("grid-nested-mapping-value", _grid("grid: {nu: [{a: 1}]}\n"), r"'nu'"),
    Case("grid-runs-not-a-list", _grid("runs: {nu: 1}\n"), r"'runs'"),
    Case("grid-both-grid-and-runs", _grid("grid: {nu: [1]}\nruns: [{nu: 1}]\n"), r"exactly one"),
    Case("grid-neither-grid-nor-runs", _grid("preset: smoke\n"), r"exactly one"),
    Case("grid-unknown-preset", _grid("preset: huge\ngrid: {nu: [1]}\n"), r"'huge'"),
    Case("grid-timeout-string", _grid("timeout: soon\ngrid: {nu: [1]}\n"), r"'soon'"),
    Case("grid-timeout-bool", _grid("timeout: true\ngrid: {nu: [1]}\n"), r"timeout"),
    Case("grid-fixed-not-a-mapping", _grid("fixed: [1, 2]\ngrid: {nu: [1]}\n"), r"'fixed'"),
    Case("grid-top-level-list", _grid("- nu: 1\n"), r"mapping.*list"),
    Case("grid-non-string-name", _grid("grid: {1: [2]}\n"), r"names must be strings"),
    Case("grid-unknown-parameter", _grid("grid: {nuu: [1]}\n", {"preset", "nu"}), r"nuu"),
    Case("grid-python-object-tag", _grid("grid: !!python/object/apply:os.system [echo hi]\n"),
         r"not valid YAML|python"),
    Case("grid-invalid-yaml", _grid("grid: {nu: [1, 2\n"), r"not valid YAML"),
    Case("grid-binary-garbage", _grid(b"\x00\xff\xfe" * 40), r"not valid YAML"),
    Case("grid-too-many-runs", _grid("grid: {" + ", ".join(
        f"p{i}: [{', '.join(str(v) for v in range(10))}]" for i in range(12)) + "}\n"),
        r"expands to 1000000000000 runs; expected at most"),
    Case("grid-missing-file", lambda t: lambda: load_grid(t / "absent.yaml"), r"does not exist"),
]


# --------------------------------------------------------------------------- registries


def _raises(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Build:
    return lambda tmp: (lambda: factory(*args, **kwargs))


TINY_NET = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten())
REGISTRY_REJECTS = [
    Case("registry-pooling-unknown", _raises(create_pooling, "maxx", in_channels=4,
                                             num_classes=2), r"'maxx'.*one of:.*gap"),
    Case("registry-pooling-bad-kwarg", _raises(create_pooling, "lse", in_channels=4,
                                               num_classes=2, rr=3), r"'lse'.*rr.*expected arguments \(.*\bq\b"),
    Case("registry-pooling-name-not-str", _raises(create_pooling, 3), r"string"),
    Case("registry-attribution-unknown", _raises(create_attribution, "gradcam++", TINY_NET),
         r"'gradcam\+\+'"),
    Case("registry-size-loss-unknown", _raises(create_size_loss, "l3"), r"'l3'"),
    Case("registry-size-loss-bad-kwarg", _raises(create_size_loss, "kl", lamda_s=1.0),
         r"lamda_s"),
    Case("registry-dr-net-unknown", _raises(create_dr_net, "net_c"), r"'net_c'"),
    Case("registry-ssl-model-unknown", _raises(create_ssl_model, "aeres50"), r"'aeres50'"),
    Case("registry-attack-unknown", _raises(ATTACKS.create, "fgsm"), r"'fgsm'"),
    # imported on call: the CS package is young, a broken import fails this case only
    Case("registry-solver-unknown", lambda t: lambda: importlib.import_module(
        "wslbench.cs.solvers").create_solver("dal"), r"'dal'.*one of"),
    Case("registry-sparsity-criterion-unknown", _raises(SparsityEnhancedLoss, nu=1e-3,
                                                        criterion="gamma"), r"'gamma'"),
]

CONFIG_BUILDERS = {"dr": dr.dr_config, "wsl": wsl.wsl_config, "ssl": ssl.ssl_config,
                   "mri": mri.mri_config, "adversarial": adversarial.adversarial_config}
CONFIG_REJECTS = [
    case
    for name, build in CONFIG_BUILDERS.items()
    for case in (
        Case(f"config-{name}-unknown-key", _raises(build, "smoke", no_such_knob=1),
             r"no_such_knob"),
        Case(f"config-{name}-wrong-type", _raises(build, "smoke", seed="zero"), r"'seed'.*'zero'"),
        Case(f"config-{name}-unknown-preset", _raises(build, "medium"), r"'medium'"),
    )
]


# --------------------------------------------------------------------------- checkpoints


def _torch_file(tmp: Path, obj: Any, name: str = "ckpt.pt") -> Path:
    path = tmp / name
    torch.save(obj, path)
    return path


class _Payload:
    """Any Python object: ``weights_only=True`` refuses to unpickle it."""


CHECKPOINT_REJECTS = [
    Case("checkpoint-pickle-object", lambda t: lambda: load_checkpoint(_torch_file(
        t, {"model": _Payload()})), r"pickled Python objects.*weights_only"),
    Case("checkpoint-zero-byte", lambda t: lambda: load_checkpoint(
        _file("e.pt", b"")(t)), r"not a readable torch file"),
    Case("checkpoint-garbage", lambda t: lambda: load_checkpoint(
        _file("g.pt", b"PK\x03\x04" + b"\x00" * 200)(t)), r"not a readable torch file"),
    Case("checkpoint-truncated", lambda t: lambda: load_checkpoint(_cut(_torch_file(
        t, {"w": torch.ones(64, 64)}))), r"not a readable torch file"),
    Case("checkpoint-missing", lambda t: lambda: load_checkpoint(t / "absent.pt"),
         r"does not exist"),
    Case("checkpoint-state-dict-of-numbers", lambda t: lambda: load_state_dict(_torch_file(
        t, {"w": 1.0})), r"state dict of tensors"),
]


# --------------------------------------------------------------------------- CLI


CLI_CASES = [
    ("cli-run-unknown-notebook", ("run", "99_nope", "--out", "{tmp}/runs"), r"unknown notebook"),
    ("cli-run-python-tag-param", ("run", str(TINY), "-p", "x",
                                  "!!python/object/apply:os.system [echo hi]", "--out",
                                  "{tmp}/runs"), r"cannot parse value"),
    ("cli-run-mapping-param", ("run", str(TINY), "-p", "x", "{a: 1}", "--out", "{tmp}/runs"),
     r"expected a number"),
    ("cli-run-unknown-param", ("run", str(TINY), "-p", "nope", "1", "--out", "{tmp}/runs"),
     r"unknown parameter\(s\) nope"),
    ("cli-run-unknown-preset", ("run", str(TINY), "--preset", "huge"), r"invalid choice"),
    ("cli-grid-bad-file", ("grid", str(TINY), "{tmp}/bad.yaml", "--out", "{tmp}/runs"),
     r"'nu'.*list"),
    ("cli-grid-missing-file", ("grid", str(TINY), "{tmp}/absent.yaml"), r"does not exist"),
    ("cli-grid-workers-not-int", ("grid", str(TINY), "{tmp}/bad.yaml", "--workers", "abc"),
     r"invalid int"),
    ("cli-summary-missing-folder", ("summary", "{tmp}/absent"), r"does not exist"),
    ("cli-summary-plot-without-by", ("summary", "{tmp}", "--plot", "acc"), r"--by"),
    ("cli-golden-unknown-notebook", ("golden", "update", "99_nope", "--golden-dir", "{tmp}"),
     r"unknown notebook"),
    ("cli-dashboards-bad-port", ("dashboards", "--port", "http"), r"invalid int"),
    ("cli-unknown-command", ("explode",), r"invalid choice"),
    ("cli-demo-unknown-preset", ("demo", "--preset", "huge", "--out", "{tmp}/runs"),
     r"invalid choice"),
    ("cli-run-timeout-not-a-number", ("run", str(TINY), "--timeout", "soon"), r"invalid float"),
]

#: How a message states the expectation ("...; expected X", "X must be Y", "needs ...").
EXPECTATION = re.compile(r"(?<!un)expected|must|needs")
REJECTS = (IMAGE_REJECTS + ARRAY_REJECTS + NIFTI_REJECTS + TABLE_REJECTS + GRID_REJECTS
           + SLIDE_REJECTS + REGISTRY_REJECTS + CONFIG_REJECTS + CHECKPOINT_REJECTS)
ACCEPTS = IMAGE_ACCEPTS + ARRAY_ACCEPTS + NIFTI_ACCEPTS


@pytest.mark.parametrize("case", REJECTS, ids=[c.id for c in REJECTS])
def test_hostile_input_is_rejected_cleanly(case: Case, tmp_path: Path) -> None:
    call = case.build(tmp_path)
    with pytest.raises(WslbenchError) as info:
        call()
    message = str(info.value)
    assert EXPECTATION.search(message), f"message does not say what was expected: {message}"
    assert case.match is not None
    assert re.search(case.match, message, flags=re.S), message


@pytest.mark.parametrize("case", ACCEPTS, ids=[c.id for c in ACCEPTS])
def test_legitimate_odd_input_loads_correctly(case: Case, tmp_path: Path) -> None:
    assert case.check is not None
    case.check(case.build(tmp_path)())


@pytest.mark.parametrize("argv, match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_rejects_bad_input_with_one_line_and_code_2(
    argv: tuple[str, ...], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text("grid: {nu: 1}\n")
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("wslbench: error"), err
    assert "Traceback" not in err
    assert re.search(match, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing is written"


@pytest.mark.parametrize("loader", sorted(IMAGE_LOADERS))
def test_oversized_header_is_refused_before_decoding(
    loader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size is read from the header: no pixel buffer is decoded (or allocated)."""
    from PIL import ImageFile

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", no_decoding)
    for path in (_png_claiming(tmp_path, 11000, 11000), _tiff_claiming(tmp_path, 9000, 9000)):
        with pytest.raises(WslbenchError, match="pixels"):
            IMAGE_LOADERS[loader](path)


def test_gzip_nifti_is_truncated_not_accepted(tmp_path: Path) -> None:
    """A .nii.gz cut in half must not load as if it were complete."""
    path = _nii(tmp_path, RNG.random((8, 8, 8)).astype(np.float32), "v.nii.gz")
    assert gzip.decompress(path.read_bytes())  # the full file is valid
    with pytest.raises(WslbenchError, match="truncated|corrupt"):
        nifti.load_nifti(_cut(path, 0.5))
