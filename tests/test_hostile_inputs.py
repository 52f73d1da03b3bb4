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
import io
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
from wslbench.checkpoint import load_checkpoint, load_state_dict
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

# --------------------------------------------------------------------------- cell data (issue 10)
# Cases for the cell-detection modules added after the first pass: real-data cell loaders,
# synthetic cells, patches, the CS codec / solvers / decoder, detection metrics, the density
# and local-maxima baselines, the CNNCS loss and experiment, and the dashboard uploads.

from wslbench.cs import codec as cs_codec  # noqa: E402
from wslbench.cs import recovery as cs_recovery  # noqa: E402
from wslbench.cs import solvers as cs_solvers  # noqa: E402
from wslbench.dashboards import uploads  # noqa: E402
from wslbench.data import cell_loaders, cell_patches, synthetic_cells  # noqa: E402
from wslbench.experiments import cnncs as cnncs_exp  # noqa: E402
from wslbench.losses.cs import cnncs_loss  # noqa: E402
from wslbench.metrics import detection  # noqa: E402
from wslbench.models.density import (  # noqa: E402
    DensityNet,
    count_from_density,
    density_target,
    detect_peaks,
)
from wslbench.models.local_maxima import LocalMaximaDetector  # noqa: E402

cs_decode = importlib.import_module("wslbench.cs.decode")  # the package re-exports decode()

CELL_IMAGE_SUFFIX = {"icpr2012": ".bmp", "mitos_atypia14": ".tiff", "amida13": ".tif"}


def _cell_folder(tmp: Path, csv: str | bytes | None, style: str = "icpr2012",
                 image: Callable[[Path], Path] | None = None) -> Path:
    """A one-image folder of ``style``: ``cells/<img><suffix>`` with its CSV (``None``: none)."""
    root = tmp / "cells"
    folder = root / "01" if style == "amida13" else root
    folder.mkdir(parents=True)
    stem = "01" if style == "amida13" else "A03_00Aa"
    if image is None:
        Image.fromarray(RGB).save(folder / f"{stem}{CELL_IMAGE_SUFFIX[style]}")
    else:  # the built file keeps its suffix (the loaders pick images by suffix)
        made = image(tmp)
        made.rename(folder / f"{stem}{made.suffix}")
    if csv is not None:
        name = f"{stem}_mitosis.csv" if style == "mitos_atypia14" else f"{stem}.csv"
        (folder / name).write_bytes(csv if isinstance(csv, bytes) else csv.encode())
    return root


def _cells(csv: str | bytes | None, style: str = "icpr2012",
           image: Callable[[Path], Path] | None = None, **kwargs: Any) -> Build:
    return lambda tmp: (lambda: cell_loaders.load_cell_folder(
        _cell_folder(tmp, csv, style, image), style=style, **kwargs))


def _cell_image(csv: str, image: Callable[[Path], Path], style: str = "icpr2012") -> Build:
    """Load the folder, then read its (only) image: images are decoded lazily."""
    return lambda tmp: (lambda: cell_loaders.load_cell_folder(
        _cell_folder(tmp, csv, style, image), style=style).image(0))


def _two_same_stem(tmp: Path) -> Callable[[], Any]:
    for sub in ("a", "b"):
        (tmp / "cells" / sub).mkdir(parents=True)
        Image.fromarray(RGB).save(tmp / "cells" / sub / "img.bmp")
        (tmp / "cells" / sub / "img.csv").write_text("")
    return lambda: cell_loaders.load_cell_folder(tmp / "cells", style="icpr2012")


def _read_cell_csv(text: str | bytes, style: str = "icpr2012", **kwargs: Any) -> Build:
    def build(tmp: Path) -> Callable[[], Any]:
        path = tmp / "a.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return lambda: cell_loaders.read_cell_csv(path, style=style, **kwargs)

    return build


CELL_REJECTS = [
    Case("cells-icpr-zero-byte-image", _cells("", image=_file("e.bmp", b"")), r"cannot read"),
    Case("cells-icpr-png-magic-then-garbage", _cells("", image=_file(
        "j.bmp", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)), r"cannot read"),
    Case("cells-icpr-text-named-bmp", _cells("", image=_file("t.bmp", b"not an image\n")),
         r"cannot read"),
    Case("cells-icpr-truncated-bmp-on-read", _cell_image("", lambda t: _cut(_save(
        t, "a.bmp", RGB))), r"cannot read|truncated"),
    Case("cells-icpr-truncated-png-on-read", _cell_image("", lambda t: _cut(_save(
        t, "a.png", RGB))), r"cannot read|truncated"),
    Case("cells-mitos-truncated-tiff-on-read", _cell_image("", lambda t: _cut(
        _rgb_tiff(t, RGB16), 0.3), "mitos_atypia14"), r"cannot read|cannot decode"),
    Case("cells-icpr-png-header-20000x20000", _cells("", image=lambda t: _png_claiming(
        t, 20000, 20000)), r"400000000 pixels|20000×20000 pixels"),
    Case("cells-mitos-tiff-header-20000x20000", _cells("", "mitos_atypia14", image=lambda t:
        _tiff_claiming(t, 20000, 20000)), r"20000×20000 pixels"),
    Case("cells-icpr-csv-one-value", _cells("12\n"), r"1 value\(s\), missing column"),
    Case("cells-icpr-csv-odd-values", _cells("1,2,3\n"), r"3 value\(s\)"),
    Case("cells-mitos-csv-missing-confidence", _cells("3,4\n", "mitos_atypia14"),
         r"2 value\(s\).*x, y, confidence"),
    Case("cells-icpr-header-missing-y", _cells("x\n3\n"), r"lacks column.*'y'"),
    Case("cells-icpr-header-only-unknown-columns", _cells("foo,bar\n"), r"lacks column"),
    Case("cells-icpr-csv-non-numeric", _cells("3,abc\n"), r"'abc' is not a number"),
    Case("cells-icpr-csv-nan", _cells("nan,4\n"), r"'nan' is not a finite number"),
    Case("cells-icpr-csv-inf", _cells("4,inf\n"), r"'inf' is not a finite number"),
    Case("cells-icpr-csv-negative", _cells("-3,4\n"), r"outside the image"),
    Case("cells-icpr-csv-outside-image", _cells("4,500\n"), r"row 500.*\[0, 32\]"),
    Case("cells-amida-csv-outside-image", _cells("40,4\n", "amida13"), r"row 40"),
    Case("cells-mitos-confidence-not-a-number", _cells("3,4,high\n", "mitos_atypia14"),
         r"'high'"),
    Case("cells-icpr-csv-binary", _cells(b"\xff\xfe\x00\x81" * 64), r"cannot read CSV"),
    Case("cells-icpr-missing-csv", _cells(None), r"no annotation file A03_00Aa\.csv"),
    Case("cells-mitos-missing-csv", _cells(None, "mitos_atypia14"), r"A03_00Aa_mitosis\.csv"),
    Case("cells-duplicate-image-names", _two_same_stem, r"two images are named 'img'"),
    Case("cells-unknown-style", lambda t: lambda: cell_loaders.load_cell_folder(
        t, style="icpr2014"), r"'icpr2014'.*amida13"),
    Case("cells-style-not-a-string", lambda t: lambda: cell_loaders.load_cell_folder(
        t, style=None), r"style"),
    Case("cells-empty-folder", lambda t: lambda: cell_loaders.load_cell_folder(
        t, style="amida13"), r"no image"),
    Case("cells-missing-folder", lambda t: lambda: cell_loaders.load_cell_folder(
        t / "absent", style="amida13"), r"does not exist"),
    Case("cells-confidence-threshold-nan", _cells("", confidence_threshold=float("nan")),
         r"confidence_threshold"),
    Case("cells-confidence-threshold-string", _cells("", confidence_threshold="high"),
         r"confidence_threshold.*'high'"),
    Case("cells-min-radius-negative", _cells("", min_radius=-2.0), r"min_radius"),
    Case("cells-min-radius-string", _cells("", min_radius="8"), r"min_radius.*'8'"),
    Case("cells-missing-csv-option-unknown", _cells("", missing_csv="skip"), r"'skip'"),
    Case("cells-read-csv-missing-file", lambda t: lambda: cell_loaders.read_cell_csv(
        t / "absent.csv", style="icpr2012"), r"does not exist"),
    Case("cells-read-csv-unknown-style", _read_cell_csv("1,2\n", style="mitos"), r"'mitos'"),
    Case("cells-read-csv-outside-shape", _read_cell_csv("1,2\n", shape=(1, 1)),
         r"\[0, 1\] × \[0, 1\]"),
    Case("cells-read-csv-amida-header-text", _read_cell_csv("row,col\n3,x\n", style="amida13"),
         r"'x' is not a number"),
]


def _cell_sample(csv: str, style: str = "icpr2012",
                 image: Callable[[Path], Path] | None = None) -> Build:
    """Load a one-image folder; returns ``(centroids, image (3, H, W))``."""
    def build(tmp: Path) -> Callable[[], Any]:
        def call() -> Any:
            ds = cell_loaders.load_cell_folder(_cell_folder(tmp, csv, style, image), style=style)
            return ds.centroids[0], ds.image(0)

        return call

    return build


def _cell_check(centroids: np.ndarray, image: np.ndarray, atol: float = 1e-6
                ) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        np.testing.assert_allclose(out[0], np.asarray(centroids, np.float64).reshape(-1, 2))
        _close(image.transpose(2, 0, 1) if image.ndim == 3 else image, atol)(out[1])

    return check


GREY32 = (RNG.random((32, 32)) * 255).astype(np.uint8)
GREY32_16 = (RNG.random((32, 32)) * 65535).astype(np.uint16)
RGBA32 = np.dstack([RGB, np.full((32, 32), 9, np.uint8)])

CELL_ACCEPTS = [
    # A grey BMP (1 channel where 3 are expected): replicated to RGB; x, y read as col, row.
    Case("cells-icpr-grey-bmp-replicated", _cell_sample("4,7\n", image=lambda t: _save(
        t, "g.bmp", GREY32)), check=_cell_check([[7, 4]], np.repeat(
            GREY32[..., None] / 255.0, 3, axis=2))),
    # RGBA PNG (4 channels): the alpha is dropped.
    Case("cells-icpr-rgba-png-alpha-dropped", _cell_sample("", image=lambda t: _save(
        t, "a.png", RGBA32)), check=_cell_check(np.zeros((0, 2)), RGBA32[..., :3] / 255.0)),
    # 16-bit grey PNG: divided by 65535.
    Case("cells-amida-16-bit-png-rescaled", _cell_sample("3,5\n", "amida13", image=lambda t:
        _save(t, "g16.png", GREY32_16)), check=_cell_check([[3, 5]], np.repeat(
            GREY32_16[..., None] / 65535.0, 3, axis=2), atol=1e-5)),
    # 16-bit RGB TIFF (scanner output): divided by 65535; rows below the confidence dropped.
    Case("cells-mitos-16-bit-rgb-tiff", _cell_sample("4,7,0.9\n5,5,0.2\n", "mitos_atypia14",
        image=lambda t: _rgb_tiff(t, np.pad(RGB16, ((0, 16), (0, 16), (0, 0))))),
         check=_cell_check([[7, 4]], np.pad(RGB16, ((0, 16), (0, 16), (0, 0))) / 65535.0,
                           atol=1e-5)),
    # Several x, y pairs on one row (the pixels of one mitosis) are averaged into its centroid.
    Case("cells-icpr-pixel-list-averaged", lambda t: lambda: cell_loaders.read_cell_csv(
        _file("p.csv", b"1,2,3,4\n")(t), style="icpr2012"), check=lambda out: (
            np.testing.assert_allclose(out, [[3.0, 2.0]]))),
    # A zero-byte CSV is an image without mitosis (the ICPR 2012 release has such files).
    Case("cells-icpr-zero-byte-csv-no-cells", lambda t: lambda: cell_loaders.read_cell_csv(
        _file("e.csv", b"")(t), style="icpr2012"), check=lambda out: (
            np.testing.assert_array_equal(out, np.zeros((0, 2))))),
    # Header form with semicolons and any case (AMIDA13: row, col).
    Case("cells-amida-header-semicolons", lambda t: lambda: cell_loaders.read_cell_csv(
        _file("h.csv", b"ROW;Col\n3;5\n")(t), style="amida13"), check=lambda out: (
            np.testing.assert_allclose(out, [[3.0, 5.0]]))),
]


def _cell_config(**kwargs: Any) -> Build:
    return _raises(synthetic_cells.CellImageConfig, **kwargs)


SYNTH_CELL_REJECTS = [
    Case("synth-cells-size-63", _cell_config(size=63), r"size.*\[64, 512\].*63"),
    Case("synth-cells-size-513", _cell_config(size=513), r"513"),
    Case("synth-cells-size-float", _cell_config(size=128.0), r"128\.0"),
    Case("synth-cells-size-bool", _cell_config(size=True), r"True"),
    Case("synth-cells-size-string", _cell_config(size="256"), r"'256'"),
    Case("synth-cells-target-mean-negative", _cell_config(target_mean=-1.0), r"target_mean"),
    Case("synth-cells-target-mean-nan", _cell_config(target_mean=float("nan")), r"target_mean"),
    Case("synth-cells-target-mean-string", _cell_config(target_mean="4"), r"target_mean.*'4'"),
    Case("synth-cells-max-targets-negative", _cell_config(max_targets=-1), r"max_targets"),
    Case("synth-cells-target-radius-inverted", _cell_config(target_radius=(8.0, 5.0)),
         r"target_radius.*low <= high"),
    Case("synth-cells-target-radius-nan", _cell_config(target_radius=(float("nan"), 5.0)),
         r"target_radius"),
    Case("synth-cells-target-radius-scalar", _cell_config(target_radius=5.0), r"target_radius"),
    Case("synth-cells-target-radius-strings", _cell_config(target_radius=("a", "b")),
         r"target_radius"),
    Case("synth-cells-clutter-radius-three", _cell_config(clutter_radius=(2.0, 3.0, 4.0)),
         r"clutter_radius"),
    Case("synth-cells-blur-inverted", _cell_config(blur_sigma=(1.0, 0.5)), r"blur_sigma"),
    Case("synth-cells-clutter-density-negative", _cell_config(clutter_density=-0.1),
         r"clutter_density"),
    Case("synth-cells-clutter-density-nan", _cell_config(clutter_density=float("nan")),
         r"clutter_density"),
    Case("synth-cells-clutter-density-string", _cell_config(clutter_density="dense"),
         r"clutter_density.*'dense'"),
    Case("synth-cells-noise-inf", _cell_config(noise_std=float("inf")), r"noise_std"),
    Case("synth-cells-dataset-zero-images", _raises(synthetic_cells.make_cell_dataset, 0),
         r"n_images"),
    Case("synth-cells-dataset-bad-config", _raises(synthetic_cells.make_cell_dataset, 2,
                                                   {"size": 64}), r"config"),
]

PATCH_IMAGE = np.zeros((3, 64, 64), np.float32)


def _patches(images: Any, centroids: Any, **kwargs: Any) -> Build:
    kwargs.setdefault("size", 32)
    return _raises(cell_patches.extract_cell_patches, images, centroids, **kwargs)


PATCH_REJECTS = [
    Case("patches-nan-centroid", _patches([PATCH_IMAGE], [np.array([[np.nan, 3.0]])]),
         r"centroids\[0\].*finite"),
    Case("patches-inf-centroid", _patches([PATCH_IMAGE], [np.array([[np.inf, 3.0]])]),
         r"centroids\[0\]"),
    Case("patches-centroids-3-columns", _patches([PATCH_IMAGE], [np.zeros((2, 3))]),
         r"\(2, 3\)"),
    Case("patches-centroids-strings", _patches([PATCH_IMAGE], [[["a", "b"]]]),
         r"centroids\[0\]"),
    Case("patches-centroids-ragged", _patches([PATCH_IMAGE], [[[1.0, 2.0], [3.0]]]),
         r"centroids\[0\]"),
    Case("patches-image-1d", _patches([np.zeros(64)], [np.zeros((0, 2))]), r"\(64,\)"),
    Case("patches-image-4d", _patches([np.zeros((1, 3, 64, 64))], [np.zeros((0, 2))]),
         r"\(1, 3, 64, 64\)"),
    Case("patches-image-nan", _patches([np.full((3, 64, 64), np.nan, np.float32)],
                                       [np.zeros((0, 2))]), r"NaN|finite"),
    Case("patches-size-larger-than-image", _patches([PATCH_IMAGE], [np.zeros((0, 2))],
                                                    size=65), r"65 × 65"),
    Case("patches-size-zero", _patches([PATCH_IMAGE], [np.zeros((0, 2))], size=0), r"size"),
    Case("patches-size-float", _patches([PATCH_IMAGE], [np.zeros((0, 2))], size=32.0),
         r"size.*32\.0"),
    Case("patches-stride-zero", _patches([PATCH_IMAGE], [np.zeros((0, 2))], stride=0),
         r"stride"),
    Case("patches-length-mismatch", _patches([PATCH_IMAGE, PATCH_IMAGE], [np.zeros((0, 2))]),
         r"2 images but 1 centroid"),
    Case("patches-images-not-a-sequence", _patches(3, [np.zeros((0, 2))]), r"images"),
    Case("patches-channel-mismatch", _patches([PATCH_IMAGE, np.zeros((1, 64, 64))],
                                              [np.zeros((0, 2))] * 2), r"channel"),
    Case("tiles-larger-than-image", _raises(cell_patches.tile_image, PATCH_IMAGE, size=65),
         r"64 × 64.*65"),
    Case("tiles-overlap-too-large", _raises(cell_patches.tile_image, PATCH_IMAGE, size=32,
                                            overlap=32), r"overlap"),
    Case("tiles-image-1d", _raises(cell_patches.tile_image, np.zeros(64), size=8), r"\(64,\)"),
    Case("merge-origins-wrong-shape", _raises(cell_patches.merge_tile_detections,
                                              [np.zeros((0, 2))], np.zeros((1, 3)),
                                              min_distance=3.0), r"origins"),
    Case("merge-origins-count-mismatch", _raises(cell_patches.merge_tile_detections,
                                                 [np.zeros((0, 2))] * 2, np.zeros((1, 2)),
                                                 min_distance=3.0), r"\(2, 2\)"),
    Case("merge-nan-detection", _raises(cell_patches.merge_tile_detections,
                                        [np.array([[np.nan, 1.0]])], np.zeros((1, 2)),
                                        min_distance=3.0), r"detections\[0\]"),
    Case("merge-min-distance-nan", _raises(cell_patches.merge_tile_detections,
                                           [np.zeros((0, 2))], np.zeros((1, 2)),
                                           min_distance=float("nan")), r"min_distance"),
    Case("merge-min-distance-string", _raises(cell_patches.merge_tile_detections,
                                              [np.zeros((0, 2))], np.zeros((1, 2)),
                                              min_distance="3"), r"min_distance.*'3'"),
    Case("merge-scores-nan", _raises(cell_patches.merge_tile_detections,
                                     [np.ones((1, 2))], np.zeros((1, 2)), min_distance=3.0,
                                     scores=[np.array([np.nan])]), r"scores\[0\]"),
    Case("merge-scores-count-mismatch", _raises(cell_patches.merge_tile_detections,
                                                [np.ones((1, 2))], np.zeros((1, 2)),
                                                min_distance=3.0, scores=[]), r"0 score"),
    Case("merge-detections-not-a-sequence", _raises(cell_patches.merge_tile_detections, 5,
                                                    np.zeros((1, 2)), min_distance=3.0),
         r"detections"),
]

CODEC = cs_codec.ProjectionCodec(height=16, width=16, n_lines=4, code_length=8)


def _codec(**kwargs: Any) -> Build:
    return _raises(cs_codec.ProjectionCodec, **{"height": 16, "width": 16, **kwargs})


#: The count encoding (kept as an option) has its own limits: a candidate needs 2 lines.
COUNT_CODEC = cs_codec.ProjectionCodec(height=16, width=16, n_lines=4, code_length=8,
                                       encoding="count")


def _decode(a_hat: Any = None, codec: cs_codec.ProjectionCodec = CODEC, **kwargs: Any) -> Build:
    kwargs.setdefault("threshold", 0.5)
    kwargs.setdefault("bandwidth", 3.0)
    a = torch.zeros(1, codec.n_lines, codec.n) if a_hat is None else a_hat
    return _raises(cs_decode.decode, codec, a, **kwargs)


D8 = torch.randn(8, 20, generator=torch.Generator().manual_seed(0))
X8 = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
NAN_X8 = X8.clone()
NAN_X8[1, 2] = float("nan")

CS_REJECTS = [
    Case("codec-height-zero", _codec(height=0), r"height.*>= 1"),
    Case("codec-width-negative", _codec(width=-4), r"width"),
    Case("codec-height-float", _codec(height=16.0), r"height.*16\.0"),
    Case("codec-height-bool", _codec(height=True), r"height"),
    Case("codec-lines-zero", _codec(n_lines=0), r"n_lines"),
    Case("codec-code-length-string", _codec(code_length="8"), r"code_length.*'8'"),
    Case("codec-seed-negative", _codec(seed=-1), r"seed"),
    Case("codec-bin-size-zero", _codec(bin_size=0.0), r"bin_size"),
    Case("codec-bin-size-negative", _codec(bin_size=-1.0), r"bin_size"),
    Case("codec-bin-size-nan", _codec(bin_size=float("nan")), r"bin_size"),
    Case("codec-bin-size-inf", _codec(bin_size=float("inf")), r"bin_size"),
    Case("codec-bin-size-string", _codec(bin_size="1"), r"bin_size"),
    Case("codec-count-weight-nan", _codec(count_weight=float("nan")), r"count_weight"),
    Case("codec-huge-patch", _codec(height=10**7, width=10**7), r"too large|at most"),
    Case("codec-centroid-outside", _raises(CODEC.encode, [np.array([[20.0, 3.0]])]),
         r"outside the 16×16 patch"),
    Case("codec-centroid-negative", _raises(CODEC.encode, [np.array([[-1.0, 3.0]])]),
         r"outside"),
    Case("codec-centroid-nan", _raises(CODEC.encode, [np.array([[np.nan, 3.0]])]),
         r"NaN or infinite"),
    Case("codec-centroid-3-columns", _raises(CODEC.encode, [np.zeros((2, 3))]), r"\(2, 3\)"),
    Case("codec-centroids-one-array-not-list", _raises(CODEC.encode, np.zeros((2, 2))),
         r"\(k, 2\)"),
    Case("codec-centroids-int", _raises(CODEC.encode, 5), r"int"),
    Case("codec-centroids-string", _raises(CODEC.encode, "cells"), r"str"),
    Case("codec-centroids-non-numeric", _raises(CODEC.encode, [[["a", "b"]]]),
         r"centroids\[0\]"),
    Case("codec-positions-nan", _raises(CODEC.positions, np.array([[np.nan, 1.0]])),
         r"NaN or infinite"),
    Case("codec-compress-wrong-shape", _raises(CODEC.compress, torch.zeros(1, 3, CODEC.n)),
         r"\(1, 3, \d+\)"),
    Case("codec-compress-wrong-dictionary", _raises(CODEC.compress, torch.zeros(
        1, 4, CODEC.n), torch.zeros(3, 3)), r"D must be"),
    Case("codec-split-wrong-length", _raises(CODEC.split, torch.zeros(1, 5)), r"33"),
    Case("decode-a-hat-wrong-shape", _decode(torch.zeros(1, 3, 5)), r"\(1, 3, 5\)"),
    Case("decode-a-hat-numpy", _decode(np.zeros((1, 4, CODEC.n))), r"ndarray"),
    Case("decode-a-hat-nan", _decode(torch.full((1, 4, CODEC.n), float("nan"))),
         r"NaN or infinite"),
    Case("decode-bandwidth-negative", _decode(bandwidth=-1.0), r"bandwidth"),
    Case("decode-bandwidth-nan", _decode(bandwidth=float("nan")), r"bandwidth"),
    Case("decode-threshold-negative", _decode(threshold=-0.1), r"threshold"),
    Case("decode-threshold-string", _decode(threshold="0.5"), r"threshold.*'0.5'"),
    Case("decode-tolerance-zero", _decode(tolerance=0.0), r"tolerance"),
    Case("decode-min-votes-zero", _decode(min_votes=0), r"min_votes.*\[1, 4\].*0"),
    Case("decode-min-votes-above-lines", _decode(min_votes=5), r"min_votes.*\[1, 4\].*5"),
    Case("decode-count-min-votes-one", _decode(min_votes=1, codec=COUNT_CODEC),
         r"min_votes.*\[2, 4\].*1"),
    Case("decode-min-angle-nan", _decode(min_angle=float("nan")), r"min_angle"),
    Case("decode-min-angle-string", _decode(min_angle="wide"), r"min_angle.*'wide'"),
    Case("decode-count-wrong-shape", _decode(count=torch.zeros(3)), r"count.*\(1,\)"),
    Case("decode-count-nan", _decode(count=torch.tensor([float("nan")])), r"count"),
    Case("decode-count-one-line-codec", lambda t: lambda: cs_decode.decode(
        cs_codec.ProjectionCodec(height=8, width=8, n_lines=1, code_length=4, encoding="count"),
        torch.zeros(1, 1, 12), threshold=0.5, bandwidth=2.0), r"count decoding.*at least 2"),
    Case("decode-peaks-nan", _raises(cs_decode.find_peaks, np.full((2, 5), np.nan),
                                     threshold=0.5), r"finite"),
    Case("decode-mean-shift-3-columns", _raises(cs_decode.mean_shift, np.zeros((4, 3)), 2.0),
         r"\(4, 3\)"),
    Case("decode-mean-shift-bandwidth-zero", _raises(cs_decode.mean_shift, np.zeros((4, 2)),
                                                     0.0), r"bandwidth"),
    Case("solver-fista-nan-x", _raises(cs_solvers.FISTA().solve, NAN_X8, D8, 0.1), r"finite"),
    Case("solver-ista-shape-mismatch", _raises(cs_solvers.ISTA().solve, X8, D8.T, 0.1),
         r"8 measurements.*20 rows"),
    Case("solver-omp-negative-lam", _raises(cs_solvers.OMP().solve, X8, D8, -0.1), r"lam"),
    Case("solver-fista-nan-lam", _raises(cs_solvers.FISTA().solve, X8, D8, float("nan")),
         r"lam"),
    Case("solver-fista-string-lam", _raises(cs_solvers.FISTA().solve, X8, D8, "0.1"), r"lam"),
    Case("solver-x-1d", _raises(cs_solvers.ISTA().solve, X8[0], D8, 0.1), r"\(8,\)"),
    Case("solver-x-numpy", _raises(cs_solvers.ISTA().solve, X8.numpy(), D8, 0.1), r"ndarray"),
    Case("solver-dtype-mismatch", _raises(cs_solvers.ISTA().solve, X8.double(), D8, 0.1),
         r"dtype"),
    Case("solver-dictionary-int", _raises(cs_solvers.ISTA().solve, X8, D8.long(), 0.1),
         r"float32 or float64"),
    Case("solver-dictionary-nan", _raises(cs_solvers.ISTA().solve, X8, torch.full(
        (8, 20), float("nan")), 0.1), r"finite"),
    Case("solver-unknown-kwarg", _raises(cs_solvers.create_solver, "fista", max_iterr=5),
         r"max_iterr"),
    Case("solver-max-iter-zero", _raises(cs_solvers.create_solver, "ista", max_iter=0),
         r"max_iter"),
    Case("solver-tol-nan", _raises(cs_solvers.create_solver, "ista", tol=float("nan")),
         r"tol"),
    Case("solver-restart-string", _raises(cs_solvers.create_solver, "fista", restart="yes"),
         r"restart"),
    Case("solver-name-not-a-string", _raises(cs_solvers.create_solver, 3), r"3|string"),
    Case("solver-lista-wrong-dictionary", _raises(cs_solvers.LISTA(8, 20).solve, X8,
                                                  torch.zeros(8, 5), 0.1), r"\(8, 5\)"),
    Case("solver-lista-wrong-dtype", _raises(cs_solvers.LISTA(8, 20), X8.double()),
         r"float64"),
    Case("solver-lista-zero-dictionary", _raises(cs_solvers.LISTA.from_dictionary,
                                                 torch.zeros(8, 20), 0.1), r"all zeros"),
    Case("recovery-nan-x", _raises(cs_recovery.sparse_recovery, NAN_X8, D8, 0.1), r"finite"),
    Case("recovery-shape-mismatch", _raises(cs_recovery.sparse_recovery, X8, D8[:5], 0.1),
         r"5 rows"),
    Case("recovery-negative-lam", _raises(cs_recovery.sparse_recovery, X8, D8, -1.0), r"lam"),
    Case("recovery-unknown-solver", _raises(cs_recovery.sparse_recovery, X8, D8, 0.1,
                                            solver="dal"), r"'dal'"),
    Case("recovery-unknown-solver-kwarg", _raises(cs_recovery.sparse_recovery, X8, D8, 0.1,
                                                  solver="fista", iterations=5),
         r"iterations"),
    Case("recovery-kwargs-with-instance", _raises(cs_recovery.sparse_recovery, X8, D8, 0.1,
                                                  solver=cs_solvers.ISTA(), max_iter=5),
         r"max_iter"),
    Case("recovery-solver-without-solve", _raises(cs_recovery.sparse_recovery, X8, D8, 0.1,
                                                  solver=object()), r"solve"),
    Case("recovery-unknown-rule", _raises(cs_recovery.sparse_recovery, X8, D8, 0.1,
                                          rule="exactly"), r"'exactly'"),
    Case("recovery-layer-negative-lam", _raises(cs_recovery.RecoveryLayer, lam=-0.5), r"lam"),
    Case("recovery-layer-unknown-solver", _raises(cs_recovery.RecoveryLayer, solver="dal"),
         r"'dal'"),
]

P2 = np.array([[1.0, 2.0], [5.0, 5.0]])
METRIC_REJECTS = [
    Case("detection-nan-prediction", _raises(detection.match_detections, np.array(
        [[np.nan, 1.0]]), P2, 3.0), r"pred.*NaN"),
    Case("detection-inf-ground-truth", _raises(detection.match_detections, P2, np.array(
        [[np.inf, 1.0]]), 3.0), r"gt.*NaN or Inf"),
    Case("detection-points-3-columns", _raises(detection.match_detections, np.zeros((2, 3)),
                                               P2, 3.0), r"\(2, 3\)"),
    Case("detection-points-strings", _raises(detection.match_detections, [["a", "b"]], P2,
                                             3.0), r"pred"),
    Case("detection-points-ragged", _raises(detection.match_detections, [[1.0, 2.0], [3.0]],
                                            P2, 3.0), r"pred"),
    Case("detection-rho-negative", _raises(detection.match_detections, P2, P2, -1.0), r"rho"),
    Case("detection-rho-zero", _raises(detection.match_detections, P2, P2, 0.0), r"rho"),
    Case("detection-rho-nan", _raises(detection.match_detections, P2, P2, float("nan")),
         r"rho"),
    Case("detection-rho-string", _raises(detection.match_detections, P2, P2, "3"), r"rho"),
    Case("detection-unknown-method", _raises(detection.match_detections, P2, P2, 3.0,
                                             method="auction"), r"'auction'"),
    Case("detection-length-mismatch", _raises(detection.compute_detection_scores, [P2, P2],
                                              [P2], 3.0), r"2 prediction arrays but 1"),
    Case("detection-single-arrays", _raises(detection.compute_detection_scores, P2, P2, 3.0),
         r"sequences"),
    Case("detection-no-images", _raises(detection.compute_detection_scores, [], [], 3.0),
         r"at least one image"),
    Case("detection-empty-score-out-of-range", _raises(detection.DetectionMetric, 3.0,
                                                       empty_score=2.0), r"empty_score"),
    Case("detection-empty-score-string", _raises(detection.DetectionMetric, 3.0,
                                                 empty_score="one"), r"empty_score.*'one'"),
    Case("detection-metric-aggregate-empty", lambda t: lambda: detection.DetectionMetric(
        3.0).aggregate(), r"no data"),
    Case("detection-metric-length-mismatch", lambda t: lambda: detection.DetectionMetric(3.0)(
        [P2, P2], [P2]), r"2 prediction arrays"),
    Case("detection-threshold-length-mismatch", _raises(detection.best_f1_threshold,
                                                        [np.zeros((1, 3))], [P2, P2], 3.0),
         r"1 candidate arrays but 2"),
    Case("detection-threshold-candidates-2-columns", _raises(
        detection.best_f1_threshold, [P2], [P2], 3.0), r"candidates.*\(k, 3\)"),
    Case("detection-threshold-no-candidate", _raises(detection.best_f1_threshold,
                                                     [np.zeros((0, 3))], [P2], 3.0),
         r"at least one candidate"),
    Case("detection-threshold-max-thresholds-1", _raises(
        detection.best_f1_threshold, [np.ones((1, 3))], [P2], 3.0, max_thresholds=1),
         r"max_thresholds"),
]

DENSITY_NET = DensityNet(in_channels=3, base_width=2, bottleneck_width=4)
DARK = LocalMaximaDetector(sigma=1.0, min_distance=2)

MODEL_REJECTS = [
    Case("density-net-input-not-divisible-by-8", _raises(DENSITY_NET, torch.zeros(
        1, 3, 20, 16)), r"divisible by 8.*20×16"),
    Case("density-net-wrong-channels", _raises(DENSITY_NET, torch.zeros(1, 1, 16, 16)),
         r"3 input channels.*1"),
    Case("density-net-3d-input", _raises(DENSITY_NET, torch.zeros(3, 16, 16)),
         r"\(3, 16, 16\)"),
    Case("density-net-numpy-input", _raises(DENSITY_NET, np.zeros((1, 3, 16, 16))),
         r"ndarray"),
    Case("density-net-nan-input", _raises(DENSITY_NET, torch.full((1, 3, 16, 16),
                                                                  float("nan"))), r"NaN"),
    Case("density-net-depth-zero", _raises(DensityNet, depth=0), r"depth"),
    Case("density-net-width-float", _raises(DensityNet, base_width=2.5), r"base_width"),
    Case("density-target-nan-centroid", _raises(density_target, [[np.nan, 3.0]], (16, 16)),
         r"NaN or Inf"),
    Case("density-target-outside", _raises(density_target, [[30.0, 3.0]], (16, 16)),
         r"outside the 16×16"),
    Case("density-target-3-columns", _raises(density_target, np.zeros((2, 3)), (16, 16)),
         r"\(2, 3\)"),
    Case("density-target-bad-shape", _raises(density_target, [[1.0, 1.0]], (16, 0)),
         r"shape"),
    Case("density-target-shape-int", _raises(density_target, [[1.0, 1.0]], 16), r"shape"),
    Case("density-target-sigma-nan", _raises(density_target, [[1.0, 1.0]], (16, 16),
                                             sigma=float("nan")), r"sigma"),
    Case("density-target-sigma-string", _raises(density_target, [[1.0, 1.0]], (16, 16),
                                                sigma="1"), r"sigma.*'1'"),
    Case("density-count-nan", _raises(count_from_density, np.full((4, 4), np.nan)), r"NaN"),
    Case("density-count-3d", _raises(count_from_density, np.zeros((2, 4, 4))), r"\(2, 4, 4\)"),
    Case("density-peaks-nan", _raises(detect_peaks, np.full((4, 4), np.nan)), r"NaN"),
    Case("local-maxima-sigma-zero", _raises(LocalMaximaDetector, sigma=0.0), r"sigma"),
    Case("local-maxima-sigma-nan", _raises(LocalMaximaDetector, sigma=float("nan")),
         r"sigma"),
    Case("local-maxima-threshold-string", _raises(LocalMaximaDetector, threshold="high"),
         r"threshold.*'high'"),
    Case("local-maxima-unknown-darkness", _raises(LocalMaximaDetector, darkness="dab"),
         r"'dab'"),
    Case("local-maxima-min-distance-zero", _raises(LocalMaximaDetector, min_distance=0),
         r"min_distance"),
    Case("local-maxima-nan-image", _raises(DARK.detect, np.full((3, 16, 16), np.nan)),
         r"finite"),
    Case("local-maxima-4-channels", _raises(DARK.detect, np.zeros((4, 16, 16))),
         r"\(4, 16, 16\)"),
    Case("local-maxima-0-255-floats", _raises(DARK.detect, np.full((3, 16, 16), 200.0)),
         r"\[0, 1\]"),
    Case("local-maxima-string-image", _raises(DARK.detect, [["a", "b"]]), r"image"),
    Case("local-maxima-haematoxylin-grey", _raises(LocalMaximaDetector(
        darkness="haematoxylin").detect, np.zeros((16, 16))), r"\(3, H, W\)"),
    Case("local-maxima-fit-length-mismatch", _raises(DARK.fit_threshold, [np.zeros((16, 16))],
                                                     [], 3.0), r"1 images and 0"),
    Case("loss-cnncs-shape-mismatch", _raises(cnncs_loss, torch.zeros(2, 9), torch.zeros(2, 8)),
         r"\(2, 9\) and \(2, 8\)"),
    Case("loss-cnncs-1d-codes", _raises(cnncs_loss, torch.zeros(9), torch.zeros(9)), r"\(9,\)"),
    Case("loss-cnncs-negative-alpha", _raises(cnncs_loss, torch.zeros(2, 9), torch.zeros(2, 9),
                                              alpha=-1.0), r"alpha"),
    Case("loss-cnncs-nan-alpha", _raises(cnncs_loss, torch.zeros(2, 9), torch.zeros(2, 9),
                                         alpha=float("nan")), r"alpha"),
    Case("loss-cnncs-alpha-without-sparse", _raises(cnncs_loss, torch.zeros(2, 9),
                                                    torch.zeros(2, 9), alpha=1.0), r"sparse"),
    Case("loss-cnncs-sparse-mismatch", _raises(cnncs_loss, torch.zeros(2, 9), torch.zeros(2, 9),
                                               torch.zeros(2, 3, 5), torch.zeros(2, 3, 4),
                                               alpha=1.0), r"\(2, 3, 5\) and \(2, 3, 4\)"),
    Case("loss-cnncs-codes-numpy", _raises(cnncs_loss, np.zeros((2, 9)), np.zeros((2, 9))),
         r"ndarray"),
]


def _smoke_run(tmp: Path) -> cnncs_exp.CNNCSTraining:
    """An untrained smoke detector: enough for the input checks of ``detect_in_image``."""
    config = cnncs_exp.cnncs_config("smoke")
    return cnncs_exp.CNNCSTraining(cnncs_exp.build_cnncs(config), config, [], 0.0)


def _detect(image: np.ndarray) -> Build:
    return lambda tmp: (lambda: cnncs_exp.detect_in_image(_smoke_run(tmp), image))


CNNCS_REJECTS = [
    Case("cnncs-config-unknown-variant", _raises(cnncs_exp.cnncs_config, "smoke",
                                                 variant="ecnncs3"), r"'ecnncs3'.*cnncs"),
    Case("cnncs-config-unknown-solver", _raises(cnncs_exp.cnncs_config, "smoke", solver="dal"),
         r"'dal'.*fista"),
    Case("cnncs-config-unknown-key", _raises(cnncs_exp.cnncs_config, "smoke", lamda=0.1),
         r"lamda"),
    Case("cnncs-config-wrong-type", _raises(cnncs_exp.cnncs_config, "smoke", epochs="many"),
         r"'epochs'.*'many'"),
    Case("cnncs-config-unknown-preset", _raises(cnncs_exp.cnncs_config, "huge"), r"'huge'"),
    Case("cnncs-config-patch-larger-than-image", _raises(
        cnncs_exp.cnncs_config, "smoke", patch_size=200),
        r"patch_size 200.*image_size 96.*expected patch_size <= image_size"),
    *[Case(f"cnncs-config-{key.replace('_', '-')}-{label}", _raises(
        cnncs_exp.cnncs_config, "smoke", **{key: value}), rf"{key}.*expected")
      for key, value, label in (("patch_size", 0, "zero"), ("lam", -1.0, "negative"),
                                ("bin_size", 0.0, "zero"), ("n_lines", 1, "one"),
                                ("rho", -1.0, "negative"), ("threshold", float("nan"), "nan"),
                                ("bandwidth", -6.0, "negative"))],
    Case("cnncs-data-image-size-out-of-range", lambda t: lambda: cnncs_exp.make_cell_data(
        cnncs_exp.cnncs_config("smoke", image_size=1000, patch_size=48)), r"\[64, 512\]"),
    Case("cnncs-detect-nan-image", _detect(np.full((3, 64, 64), np.nan, np.float32)),
         r"NaN or Inf"),
    Case("cnncs-detect-too-small", _detect(np.zeros((3, 20, 20), np.float32)),
         r"20×20.*48×48"),
    Case("cnncs-detect-2-channels", _detect(np.zeros((64, 64, 2), np.float32)),
         r"\(64, 64, 2\)"),
    Case("cnncs-detect-4-channels", _detect(np.zeros((4, 64, 64), np.float32)),
         r"\(4, 64, 64\)"),
    Case("cnncs-detect-1d", _detect(np.zeros(64, np.float32)), r"\(64,\)"),
]


# --------------------------------------------------------------------------- dashboard uploads


def _png_bytes(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(buf, format=fmt)
    return buf.getvalue()


def _nifti_upload_bytes(data: np.ndarray, affine: np.ndarray = AFFINE, gz: bool = True) -> bytes:
    raw = nib.Nifti1Image(data.astype(np.float32), affine).to_bytes()
    return gzip.compress(raw) if gz else raw


COLOUR64 = (RNG.random((64, 64, 3)) * 255).astype(np.uint8)
GOOD_PNG = _png_bytes(COLOUR64)
GOOD_JPEG = _png_bytes(COLOUR64, "JPEG")
GOOD_TIFF = _png_bytes(COLOUR64, "TIFF")
GOOD_NII = _nifti_upload_bytes(RNG.random((10, 10, 10)))
GREY64 = (RNG.random((64, 64)) * 255).astype(np.uint8)
GREY64_16 = (RNG.random((64, 64)) * 60000 + 1000).astype(np.uint16)


def _png_bytes_claiming(width: int, height: int) -> bytes:
    data = GOOD_PNG
    i = data.index(b"IHDR")
    body = struct.pack(">II", width, height) + data[i + 12:i + 17]
    return data[:i + 4] + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + data[i + 21:]


def _float_tiff_bytes(value: float) -> bytes:
    buf = io.BytesIO()
    arr = np.full((64, 64), value, np.float32)
    arr[0, 0] = 0.5
    tifffile.imwrite(buf, arr, photometric="minisblack")
    return buf.getvalue()


def _upload(name: str, content: bytes, policy: Any = None) -> Build:
    policy = uploads.FUNDUS_POLICY if policy is None else policy
    decoder = uploads.decode_nifti if policy is uploads.MRI_POLICY else uploads.decode_image
    return lambda tmp: (lambda: decoder(uploads.UploadedFile(name, content), policy))


def _nii_patched(offset: int, raw: bytes) -> bytes:
    data = bytearray(_nifti_upload_bytes(RNG.random((10, 10, 10)), gz=False))
    data[offset:offset + len(raw)] = raw
    return bytes(data)


def _nii_zero_sform() -> bytes:
    """qform_code 0, sform_code 2 and an all-zero sform: a non-invertible affine."""
    data = bytearray(_nii_patched(252, struct.pack("<hh", 0, 2)))
    data[280:328] = struct.pack("<12f", *np.zeros(12))
    return bytes(data)


HIST, MICRO, MRI = uploads.HISTOLOGY_POLICY, uploads.MICROSCOPY_POLICY, uploads.MRI_POLICY
UPLOAD_REJECTS = [
    Case("upload-zero-byte-png", _upload("a.png", b""), r"empty \(0 bytes\)"),
    Case("upload-zero-byte-nii", _upload("a.nii", b"", MRI), r"empty \(0 bytes\)"),
    Case("upload-truncated-png", _upload("a.png", GOOD_PNG[: len(GOOD_PNG) // 2]),
         r"could not be decoded as a PNG"),
    Case("upload-truncated-jpeg", _upload("a.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 2]),
         r"could not be decoded as a JPEG"),
    Case("upload-truncated-tiff", _upload("a.tif", GOOD_TIFF[: len(GOOD_TIFF) // 3], HIST),
         r"could not be decoded as a TIFF"),
    Case("upload-png-magic-then-garbage", _upload("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
         r"could not be decoded"),
    Case("upload-oversized-bytes", _upload("big.png", GOOD_PNG + b"\0" * (8 * 1024 * 1024)),
         r"8\.0 MB.*limit here is 8 MB"),
    Case("upload-png-header-20000x20000", _upload("bomb.png", _png_bytes_claiming(20000, 20000)),
         r"20000×20000"),
    Case("upload-png-header-7000x7000", _upload("wide.png", _png_bytes_claiming(7000, 7000)),
         r"7000×7000.*6000"),
    Case("upload-nifti-to-image-policy", _upload("brain.png", GOOD_NII), r"NIfTI volume"),
    Case("upload-nifti-named-nii-to-image-policy", _upload("brain.nii.gz", GOOD_NII),
         r"extension"),
    Case("upload-png-to-mri-policy", _upload("photo.nii", GOOD_PNG, MRI), r"2D PNG image"),
    Case("upload-jpeg-named-gz-to-mri-policy", _upload("photo.nii.gz", GOOD_JPEG, MRI),
         r"2D JPEG"),
    Case("upload-grey-where-colour-expected", _upload("grey.png", _png_bytes(GREY64)),
         r"grey-level image"),
    Case("upload-grey-alpha-where-colour-expected", _upload("la.png", _png_bytes(
        GREY64, mode="LA")), r"grey-level image"),
    Case("upload-1x1-image", _upload("dot.png", _png_bytes(COLOUR64[:1, :1])), r"only 1×1"),
    Case("upload-uniform-image", _upload("flat.png", _png_bytes(np.full(
        (64, 64, 3), [200, 30, 10], np.uint8)), HIST), r"blank"),
    Case("upload-float-tiff-nan", _upload("nan.tif", _float_tiff_bytes(np.nan), MICRO),
         r"NaN or infinite"),
    Case("upload-float-tiff-inf", _upload("inf.tif", _float_tiff_bytes(np.inf), MICRO),
         r"NaN or infinite"),
    Case("upload-float-tiff-negative", _upload("neg.tif", _float_tiff_bytes(-3.0), MICRO),
         r"negative"),
    Case("upload-wrong-extension", _upload("eye.gif", b"GIF89a" + b"\0" * 64), r"“\.gif”"),
    Case("upload-no-extension", _upload("eye", GOOD_PNG), r"“none”"),
    Case("upload-nifti-truncated-nii", _upload("cut.nii", _nifti_upload_bytes(
        RNG.random((10, 10, 10)), gz=False)[:600], MRI), r"truncated|corrupt"),
    Case("upload-nifti-truncated-gz", _upload("cut.nii.gz", GOOD_NII[: len(GOOD_NII) // 2], MRI),
         r"truncated"),
    Case("upload-nifti-2d", _upload("flat.nii.gz", _nifti_upload_bytes(np.ones((10, 10))), MRI),
         r"one 3D volume"),
    Case("upload-nifti-broken-magic", _upload("bad.nii", _nii_patched(344, b"xxxx"), MRI),
         r"no NIfTI header"),
    Case("upload-nifti-header-20000-cubed", _upload("big.nii", _nii_patched(40, _dims(
        3, 20000, 20000, 20000)), MRI), r"20000, 20000, 20000"),
    Case("upload-nifti-singular-affine", _upload("sing.nii", _nii_zero_sform(), MRI),
         r"not invertible|affine"),
    Case("upload-nifti-nan", _upload("nan.nii.gz", _nifti_upload_bytes(np.full(
        (10, 10, 10), np.nan)), MRI), r"NaN"),
    Case("upload-value-not-a-tuple", _raises(uploads.read_upload, 5), r"int"),
    Case("upload-value-a-string", _raises(uploads.read_upload, "a.png"), r"str"),
    Case("upload-value-missing-content", _raises(uploads.read_upload, ({"name": "a.png"},)),
         r"content"),
    Case("upload-value-item-not-a-dict", _raises(uploads.read_upload, (b"abc",)), r"bytes"),
    Case("upload-value-content-int", _raises(uploads.read_upload, (
        {"name": "a.png", "content": 10**12},)), r"content.*int"),
    Case("upload-value-content-str", _raises(uploads.read_upload, (
        {"name": "a.png", "content": "text"},)), r"content.*str"),
    Case("upload-value-v7-layout-not-dicts", _raises(uploads.read_upload, {"a.png": 3}),
         r"int"),
]

UPLOAD_ACCEPTS = [
    # A grey image where the policy accepts grey (microscopy): an (H, W) map.
    Case("upload-microscopy-grey-png", _upload("g.png", _png_bytes(GREY64), MICRO),
         check=_close(GREY64 / 255.0)),
    # 16-bit grey PNG (microscopy cameras): scaled to [0, 1] by its maximum.
    Case("upload-microscopy-16-bit-png", _upload("g16.png", _png_bytes(GREY64_16), MICRO),
         check=_close(GREY64_16 / float(GREY64_16.max()), atol=1e-5)),
    # RGBA (4 channels): the alpha is dropped.
    Case("upload-histology-rgba-png", _upload("a.png", _png_bytes(np.dstack(
        [COLOUR64, np.full((64, 64), 5, np.uint8)])), HIST), check=_close(COLOUR64 / 255.0)),
    # Upper-case extension and an absolute / Windows / traversal name: only shown, never a path.
    Case("upload-absolute-name-decodes", _upload("/abs/path/EYE.PNG", GOOD_PNG),
         check=_close(COLOUR64 / 255.0)),
    Case("upload-windows-name-decodes", _upload("C:\\x.png", GOOD_PNG),
         check=_close(COLOUR64 / 255.0)),
    # A 4D NIfTI with one volume is a 3D volume.
    Case("upload-nifti-4d-singleton", lambda t: lambda: uploads.decode_nifti(
        uploads.UploadedFile("s.nii.gz", _nifti_upload_bytes(np.ones((10, 10, 10, 1)))), MRI),
        check=lambda out: (out.data.shape == (10, 10, 10)) or pytest.fail(str(out.data.shape))),
    # ipywidgets 7 layout (name -> dict) is still read.
    Case("upload-value-v7-layout", lambda t: lambda: uploads.read_upload(
        {"a.png": {"content": memoryview(b"abc")}}), check=lambda out: (
            out == uploads.UploadedFile("a.png", b"abc")) or pytest.fail(repr(out))),
]

HOSTILE_NAMES = ["../../etc/passwd", "../../../tmp/x.png", "/abs/path.png", "/etc/passwd",
                 "C:\\x.png", "..\\..\\win.png", "a\x00b.png", "two\nlines.png",
                 "<img src=x onerror=alert(1)>.png", "x" * 500 + ".png", ""]


#: How a message states the expectation ("...; expected X", "X must be Y", "needs ...").
EXPECTATION = re.compile(r"(?<!un)expected|must|needs")
REJECTS = (IMAGE_REJECTS + ARRAY_REJECTS + NIFTI_REJECTS + TABLE_REJECTS + GRID_REJECTS
           + SLIDE_REJECTS + REGISTRY_REJECTS + CONFIG_REJECTS + CHECKPOINT_REJECTS
           + CELL_REJECTS + SYNTH_CELL_REJECTS + PATCH_REJECTS + CS_REJECTS + METRIC_REJECTS
           + MODEL_REJECTS + CNNCS_REJECTS + UPLOAD_REJECTS)
ACCEPTS = IMAGE_ACCEPTS + ARRAY_ACCEPTS + NIFTI_ACCEPTS + CELL_ACCEPTS + UPLOAD_ACCEPTS


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in cases]


@pytest.mark.parametrize("case", _params(REJECTS))
def test_hostile_input_is_rejected_cleanly(case: Case, tmp_path: Path) -> None:
    call = case.build(tmp_path)
    with pytest.raises(WslbenchError) as info:
        call()
    message = str(info.value)
    assert EXPECTATION.search(message), f"message does not say what was expected: {message}"
    assert case.match is not None
    assert re.search(case.match, message, flags=re.S), message


@pytest.mark.parametrize("case", _params(ACCEPTS))
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


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:30] for n in HOSTILE_NAMES])
@pytest.mark.parametrize("content", ["good", "truncated", "nifti"])
def test_upload_names_are_shown_escaped_never_used_as_paths(
    name: str, content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding never opens, writes or creates anything named after the upload."""
    import builtins
    import os

    data = {"good": GOOD_PNG, "truncated": GOOD_PNG[:100], "nifti": GOOD_NII}[content]
    touched: list[str] = []

    def guard(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(target: Any, *args: Any, **kwargs: Any) -> Any:
            text = os.fspath(target) if isinstance(target, str | os.PathLike) else ""
            if name and (name in text or Path(name).name in text.split(os.sep)):
                touched.append(text)
                raise AssertionError(f"the upload name was used as a path: {text!r}")
            return real(target, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(os, "open", guard(os.open))
    for method in ("open", "write_bytes", "write_text", "mkdir", "touch"):
        monkeypatch.setattr(Path, method, guard(getattr(Path, method)))
    monkeypatch.chdir(tmp_path)
    upload = uploads.read_upload(({"name": name, "type": "", "size": len(data),
                                   "content": memoryview(data)},))
    assert upload is not None
    for policy in (uploads.FUNDUS_POLICY, uploads.MRI_POLICY):
        decoder = uploads.decode_nifti if policy is uploads.MRI_POLICY else uploads.decode_image
        try:
            decoder(upload, policy)
        except WslbenchError as exc:
            message = str(exc)
            assert EXPECTATION.search(message), message
            assert "<" not in message and "\x00" not in message and "\n" not in message, message
            assert upload.shown_name in message
        else:
            assert Path(upload.name).suffix.lower() == ".png" or not name
    assert not touched
    assert not any(tmp_path.iterdir()), "nothing is written"
    shown = upload.shown_name
    assert "<" not in shown and ">" not in shown and "\x00" not in shown and "\n" not in shown
    assert len(shown) <= 100


@pytest.mark.parametrize("size", [(7000, 7000), (20000, 20000), (11000, 11000)])
def test_oversized_upload_header_is_refused_before_decoding(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's pixel size is read from its header: nothing is decoded (or allocated)."""
    from PIL import ImageFile

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized upload was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(WslbenchError, match=f"{size[0]}×{size[1]}") as info:
        uploads.decode_image(uploads.UploadedFile("big.png", _png_bytes_claiming(*size)),
                             uploads.FUNDUS_POLICY)
    assert EXPECTATION.search(str(info.value))
