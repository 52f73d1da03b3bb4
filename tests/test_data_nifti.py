"""NIfTI I/O, cohort TSV validation and the quality check of Thibeau-Sutre et al. 2.3.1."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from wslbench.data.cohort_tsv import (
    CohortRecord,
    load_cohort_tsv,
    quality_check,
    write_cohort_tsv,
)
from wslbench.data.nifti import load_nifti, save_nifti
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError

AFFINE = np.array([[-1.5, 0, 0, 90], [0, 1.5, 0, -126], [0, 0, 1.5, -72], [0, 0, 0, 1.0]])


def _vol(seed: int = 0, shape: tuple[int, ...] = (5, 6, 7)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# ----------------------------------------------------------------------------- NIfTI


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_round_trip_keeps_data_and_affine(tmp_path: Path, name: str) -> None:
    data = _vol()
    save_nifti(data, AFFINE, tmp_path / name)
    vol = load_nifti(tmp_path / name)
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, AFFINE)
    assert vol.data.dtype == np.float32
    assert vol.voxel_size == (1.5, 1.5, 1.5)
    assert vol.orientation == ("L", "A", "S")
    # a NiftiVolume saves with its own affine; a model map (1, 1, D, H, W) is squeezed
    save_nifti(vol, None, tmp_path / "again.nii.gz")
    save_nifti(torch.from_numpy(data)[None, None], AFFINE, tmp_path / "map.nii.gz")
    for other in ("again.nii.gz", "map.nii.gz"):
        np.testing.assert_array_equal(load_nifti(tmp_path / other).data, data)


def test_integer_labels_round_trip_as_int(tmp_path: Path) -> None:
    labels = np.arange(5 * 6 * 7, dtype=np.int64).reshape(5, 6, 7) % 121
    save_nifti(labels, AFFINE, tmp_path / "l.nii.gz")
    vol = load_nifti(tmp_path / "l.nii.gz")
    assert vol.source_dtype == "int32"
    np.testing.assert_array_equal(vol.data, labels)


def test_no_silent_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "v.nii.gz"
    save_nifti(_vol(0), AFFINE, path)
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        save_nifti(_vol(1), AFFINE, path)
    np.testing.assert_array_equal(load_nifti(path).data, _vol(0))
    save_nifti(_vol(1), AFFINE, path, overwrite=True)
    np.testing.assert_array_equal(load_nifti(path).data, _vol(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii.gz"]  # no temp file left


def test_accepts_4d_singleton_and_rejects_other_dims(tmp_path: Path) -> None:
    data = _vol()
    nib.save(nib.Nifti1Image(data[..., None], AFFINE), tmp_path / "t1.nii.gz")
    np.testing.assert_array_equal(load_nifti(tmp_path / "t1.nii.gz").data, data)
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), AFFINE), tmp_path / "t2.nii.gz")
    with pytest.raises(DataFormatError, match="expected a 3D volume"):
        load_nifti(tmp_path / "t2.nii.gz")
    nib.save(nib.Nifti1Image(data[0], AFFINE), tmp_path / "flat.nii.gz")
    with pytest.raises(DataFormatError, match="expected a 3D volume"):
        load_nifti(tmp_path / "flat.nii.gz")
    with pytest.raises(InvalidInputError, match="D, H, W"):
        save_nifti(np.zeros((2, 3, 4, 5)), AFFINE, tmp_path / "x.nii.gz")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_nifti(tmp_path / "absent.nii.gz")
    (tmp_path / "text.nii").write_text("not a nifti file at all")
    with pytest.raises(DataFormatError):
        load_nifti(tmp_path / "text.nii")
    save_nifti(_vol(shape=(20, 20, 20)), AFFINE, tmp_path / "v.nii.gz")
    raw = gzip.decompress((tmp_path / "v.nii.gz").read_bytes())
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        load_nifti(tmp_path / "cut.nii.gz")
    (tmp_path / "garbage.nii.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 200)
    with pytest.raises(DataFormatError):
        load_nifti(tmp_path / "garbage.nii.gz")


def test_bad_affines_and_values(tmp_path: Path) -> None:
    singular = AFFINE.copy()
    singular[2, 2] = 0.0
    with pytest.raises(InvalidInputError, match="not invertible"):
        save_nifti(_vol(), singular, tmp_path / "s.nii.gz")
    nan_affine = AFFINE.copy()
    nan_affine[0, 3] = np.nan
    with pytest.raises(InvalidInputError, match="non-finite"):
        save_nifti(_vol(), nan_affine, tmp_path / "n.nii.gz")
    with pytest.raises(InvalidInputError, match="affine"):
        save_nifti(_vol(), None, tmp_path / "a.nii.gz")
    with pytest.raises(InvalidInputError, match="NaN"):
        save_nifti(np.full((3, 3, 3), np.nan), AFFINE, tmp_path / "v.nii.gz")
    with pytest.raises(InvalidInputError, match="ending in"):
        save_nifti(_vol(), AFFINE, tmp_path / "v.npy")
    # a file on disk whose sform is singular: patch the header bytes of a valid file
    save_nifti(_vol(), AFFINE, tmp_path / "bad.nii")
    raw = bytearray((tmp_path / "bad.nii").read_bytes())
    raw[252:256] = np.array([0, 1], "<i2").tobytes()  # qform_code 0, sform_code 1
    raw[312:328] = np.zeros(4, "<f4").tobytes()  # srow_z = 0
    (tmp_path / "bad.nii").write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="not invertible"):
        load_nifti(tmp_path / "bad.nii")
    assert not (tmp_path / "s.nii.gz").exists()


# ------------------------------------------------------------------------- cohort TSV


def _cohort(tmp_path: Path, maxima: tuple[float, ...] = (1.0, 0.97, 0.9)) -> Path:
    (tmp_path / "maps").mkdir()
    rows = ["participant_id\tsession_id\tdiagnosis\tage\tsex\tpath"]
    for i, m in enumerate(maxima):
        data = _vol(i) * 0.5
        data[1, 1, 1] = m
        save_nifti(data, AFFINE, tmp_path / "maps" / f"s{i}.nii.gz")
        rows.append(f"sub-{i:02d}\tses-M00\t{'AD' if i % 2 else 'CN'}\t{70 + i}\tF\tmaps/s{i}.nii.gz")
    (tmp_path / "c.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "c.tsv"


def test_loader_resolves_relative_paths_and_parses(tmp_path: Path) -> None:
    recs = load_cohort_tsv(_cohort(tmp_path))
    assert [r.participant_id for r in recs] == ["sub-00", "sub-01", "sub-02"]
    assert recs[1] == CohortRecord("sub-01", "ses-M00", "AD", 71.0, "F",
                                   tmp_path / "maps" / "s1.nii.gz")
    assert all(r.path.is_absolute() and r.path.is_file() for r in recs)


def _edit(tsv: Path, old: str, new: str) -> None:
    tsv.write_text(tsv.read_text().replace(old, new, 1))


@pytest.mark.parametrize("old, new, error, match", [
    ("\tdiagnosis", "\tdx", DataFormatError, r"lacks column\(s\) \['diagnosis'\]"),
    ("sub-02\tses-M00", "sub-01\tses-M00", DataFormatError, r"appears on data rows 2 and 3"),
    ("\t71\t", "\tseventy\t", DataFormatError, r"column 'age'"),
    ("\tF\tmaps/s2", "\tX\tmaps/s2", DataFormatError, r"column 'sex'"),
    ("sub-01\tses-M00\tAD", "sub-01\tses-M00\tMCI", DataFormatError, r"'MCI'.*\['AD', 'CN'\]"),
    ("sub-02", "02", DataFormatError, r"sub-<label>"),
    ("maps/s1.nii.gz", "maps/absent.nii.gz", DataNotFoundError, r"absent\.nii\.gz"),
])
def test_loader_rejects_bad_tables(tmp_path: Path, old: str, new: str, error: type,
                                   match: str) -> None:
    tsv = _cohort(tmp_path)
    _edit(tsv, old, new)
    with pytest.raises(error, match=match):
        load_cohort_tsv(tsv)


def test_loader_options_and_missing_tsv(tmp_path: Path) -> None:
    tsv = _cohort(tmp_path)
    _edit(tsv, "sub-01\tses-M00\tAD", "sub-01\tses-M00\tMCI")
    assert load_cohort_tsv(tsv, diagnoses={"CN", "AD", "MCI"})[1].diagnosis == "MCI"
    _edit(tsv, "maps/s1.nii.gz", "maps/absent.nii.gz")
    assert len(load_cohort_tsv(tsv, diagnoses={"CN", "AD", "MCI"}, check_files=False)) == 3
    with pytest.raises(DataNotFoundError):
        load_cohort_tsv(tmp_path / "none.tsv")


def test_writer_round_trip_and_no_overwrite(tmp_path: Path) -> None:
    recs = load_cohort_tsv(_cohort(tmp_path))
    recs = (*recs[:2], CohortRecord("sub-09", "ses-M06", "CN", None, None, recs[2].path))
    out = write_cohort_tsv(recs, tmp_path / "out.tsv")
    assert "\tmaps/s0.nii.gz" in out.read_text()  # relative to the TSV's folder
    assert load_cohort_tsv(out) == recs
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        write_cohort_tsv(recs, out)


# ---------------------------------------------------------------------- quality check


def test_quality_check_rejects_low_maximum_and_reports_session(tmp_path: Path) -> None:
    recs = load_cohort_tsv(_cohort(tmp_path, maxima=(1.0, 0.97, 0.9)))
    kept, report = quality_check(recs)
    assert kept == recs[:2]
    assert report.kept == (0, 1)
    assert [(r.participant_id, r.session_id) for r in report.rejected] == [("sub-02", "ses-M00")]
    assert report.rejected[0].max_value == pytest.approx(0.9)
    assert "sub-02 ses-M00" in report.summary()


def test_quality_check_on_a_batch_sorts_rejections() -> None:
    batch = torch.zeros(4, 1, 3, 3, 3)
    for i, m in enumerate((0.99, 0.5, 0.96, 0.8)):
        batch[i, 0, 1, 1, 1] = m
    keys = [(f"sub-{i}", "ses-M00") for i in range(4)]
    kept, report = quality_check(batch, keys=keys)
    assert report.kept == (0, 2)
    torch.testing.assert_close(kept, batch[[0, 2]])
    assert [r.index for r in report.rejected] == [1, 3]  # increasing maximum
    kept_np, report_np = quality_check(batch.numpy(), threshold=0.6)
    assert report_np.kept == (0, 2, 3) and kept_np.shape == (3, 1, 3, 3, 3)
    with pytest.raises(InvalidInputError, match="keys"):
        quality_check(batch, keys=keys[:2])
