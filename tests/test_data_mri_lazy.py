"""Volume stores and CAPS-like folders (Thibeau-Sutre et al. 2020, 2.1; issue 24 items 4–5)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from wslbench.data import (
    COHORT_TSV_NAME,
    NiftiVolumeStore,
    TensorVolumeStore,
    caps_map_path,
    load_atlas,
    make_synthetic_cohort,
    mean_volume,
    quality_check,
    read_caps,
    sample_synthetic_cohort,
    save_nifti,
    volume_maxima,
    write_cohort,
    write_synthetic_caps,
)
from wslbench.errors import DataFormatError, DataNotFoundError, InvalidInputError
from wslbench.metrics.mask_similarity import prob_cnn
from wslbench.training import predict_proba, train_mri_cnn


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 6-subject × 2-session smoke-grid cohort in memory and as a CAPS-like folder."""
    cohort = make_synthetic_cohort(6, 2, grid="smoke", seed=3, n_qc_fail=1, atrophy=0.6)
    folder = tmp_path_factory.mktemp("caps") / "cohort"
    write_cohort(cohort, folder)
    return cohort, folder


@pytest.fixture
def caps(written, tmp_path):
    """A private copy of the written folder that a test may break."""
    folder = tmp_path / "caps"
    shutil.copytree(written[1], folder)
    return folder


def _tsv(folder):
    return pd.read_csv(folder / COHORT_TSV_NAME, sep="\t", dtype=str, keep_default_na=False)


def test_the_lazy_store_reads_what_the_tensor_holds(written):
    cohort, folder = written
    lazy = read_caps(folder).volumes
    memory = TensorVolumeStore(cohort.volumes)
    assert isinstance(lazy, NiftiVolumeStore)
    assert lazy.shape == memory.shape == tuple(cohort.volumes.shape) and len(lazy) == 12
    for key in ([3, 0, 7], torch.tensor([11, 2]), np.array([5]), slice(2, 9, 3), [-1],
                cohort.labels == 1):
        got = lazy[key]
        assert got.dtype == torch.float32 and torch.equal(got, memory[key]), key
        assert torch.equal(got, cohort.volumes[key]), key
    assert torch.equal(lazy[4], cohort.volumes[4])  # one volume: (C, D, H, W), as a tensor
    assert torch.equal(lazy[4, 0, :, 30], cohort.volumes[4, 0, :, 30])
    assert torch.equal(lazy[[1, 3], 0], cohort.volumes[[1, 3], 0])  # (B, D, H, W)
    assert torch.equal(lazy[np.array([2, 0]), 0, :, 5], cohort.volumes[np.array([2, 0]), 0, :, 5])
    assert torch.equal(lazy.subset([9, 1])[[1, 0]], cohort.volumes[[1, 9]])
    assert lazy[[]].shape == (0, 1, 61, 73, 61)
    with pytest.raises(InvalidInputError, match="out of range"):
        lazy[[12]]
    with pytest.raises(InvalidInputError, match="integers"):
        lazy[np.array([0.5])]
    with pytest.raises(InvalidInputError, match="bool mask"):
        lazy[np.ones(3, bool)]


def test_streamed_means_maxima_and_quality_check_match_the_tensor(written):
    cohort, folder = written
    lazy = read_caps(folder).volumes
    idx = np.array([0, 4, 5, 9, 11])
    torch.testing.assert_close(mean_volume(lazy, idx, batch_size=2), cohort.volumes[idx].mean(0),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(volume_maxima(lazy, batch_size=5),
                                  cohort.volumes.flatten(1).amax(1).double().numpy())
    kept, report = quality_check(lazy, keys=cohort.keys)
    _, expected = quality_check(cohort.volumes, keys=cohort.keys)
    assert report.kept == expected.kept and len(report.rejected) >= 1
    assert isinstance(kept, NiftiVolumeStore) and len(kept) == len(expected.kept)
    assert torch.equal(kept[:], cohort.volumes[list(expected.kept)])


def test_the_lazy_store_keeps_at_most_cache_size_volumes(written):
    store = NiftiVolumeStore(read_caps(written[1]).volumes.paths, cache_size=2)
    for i in range(len(store)):
        store[[i, i]]
        assert len(store._cache) <= 2
    assert sorted(store._cache) == [10, 11]


def test_the_caps_reader_round_trips_write_cohort(written):
    cohort, folder = written
    read = read_caps(folder)
    assert read.participant_ids == cohort.participant_ids and read.session_ids == cohort.session_ids
    assert torch.equal(read.labels, cohort.labels) and read.sexes == cohort.sexes
    np.testing.assert_allclose(read.ages, cohort.ages, atol=0.005)  # written with 2 decimals
    np.testing.assert_allclose(read.affine, cohort.affine)
    assert torch.equal(read.atrophy_maps[:], cohort.atrophy_maps)
    part = read.select([5, 2])
    assert part.keys == (cohort.keys[5], cohort.keys[2])
    assert torch.equal(part.volumes[:], cohort.volumes[[5, 2]])


def test_a_clinicadl_tsv_without_paths_finds_the_maps_by_the_caps_layout(caps, written):
    cohort = written[0]
    table = _tsv(caps).drop(columns="path")
    table["MMS"] = "28"  # other ClinicaDL columns are ignored
    table.to_csv(caps / COHORT_TSV_NAME, sep="\t", index=False)
    read = read_caps(caps)
    assert read.volumes.paths[0] == caps_map_path(caps, *cohort.keys[0])
    assert torch.equal(read.volumes[[0, 7]], cohort.volumes[[0, 7]])


def test_a_folder_without_atrophy_maps_has_no_ground_truth(caps):
    for path in caps.rglob("*_desc-atrophy_map.nii.gz"):
        path.unlink()
    assert read_caps(caps).atrophy_maps is None


@pytest.mark.parametrize("case, error, match", [
    ("no folder", DataNotFoundError, r"missing.*does not exist.*participants\.tsv"),
    ("no tsv", DataNotFoundError, r"participants\.tsv does not exist.*diagnosis, age, sex"),
    ("no diagnosis column", DataFormatError, r"participants\.tsv lacks column\(s\) \['diagnosis'\]"),
    ("no age column", DataFormatError, r"participants\.tsv: column 'age' is missing or empty.*2\.2\.1"),
    ("MCI diagnosis", DataFormatError, r"participants\.tsv, data row 3, column 'diagnosis': got 'MCI'; "
                                       r"expected one of \['AD', 'CN'\]"),
    ("missing map", DataNotFoundError, r"1 map file\(s\) do not exist.*sub-SYN0002_ses-M00_T1w"),
    ("map on another grid", DataFormatError, r"sub-SYN0003_ses-M06.* has shape \(20, 20, 20\); "
                                             r"expected \(61, 73, 61\)"),
    ("map with another affine", DataFormatError, r"(?s)sub-SYN0001_ses-M06.* has affine.*expected.*one grid"),
    ("corrupt map", DataFormatError, r"cannot read .*sub-SYN0001_ses-M00.* as NIfTI"),
])
def test_a_malformed_folder_gets_a_clear_error(caps, case, error, match):
    table = _tsv(caps)
    maps = [caps / p for p in table["path"]]
    if case == "no folder":
        caps = caps / "missing"
    elif case == "no tsv":
        (caps / COHORT_TSV_NAME).unlink()
    elif case in ("no diagnosis column", "no age column"):
        table.drop(columns=case.split()[1]).to_csv(caps / COHORT_TSV_NAME, sep="\t", index=False)
    elif case == "MCI diagnosis":
        table.loc[2, "diagnosis"] = "MCI"
        table.to_csv(caps / COHORT_TSV_NAME, sep="\t", index=False)
    elif case == "missing map":
        maps[2].unlink()
    elif case == "map on another grid":
        save_nifti(np.zeros((20, 20, 20), np.float32), np.eye(4), maps[5], overwrite=True)
    elif case == "map with another affine":
        data = np.asarray(nib.load(maps[1]).dataobj)
        save_nifti(data, np.diag([2.0, 2.0, 2.0, 1.0]), maps[1], overwrite=True)
    elif case == "corrupt map":
        maps[0].write_bytes(b"not a nifti file")
    with pytest.raises(error, match=match):
        read_caps(caps)


def test_mni_grid_of_recognises_the_synthetic_grids_only():
    from wslbench.data import mni_grid, mni_grid_of

    for size in ("paper", "smoke", 4.0):
        g = mni_grid(size)
        assert mni_grid_of(g.shape, g.affine) == g
    g = mni_grid(4.0)
    assert mni_grid_of((g.shape[0] + 1, *g.shape[1:]), g.affine) is None
    assert mni_grid_of(g.shape, np.eye(4)) is None


def test_an_atlas_is_checked_against_the_maps_grid(written, tmp_path):
    cohort = written[0]
    labels = np.zeros(cohort.volumes.shape[2:], np.int32)
    labels[10:20, 10:30, 10:20], labels[40:50, 10:30, 10:20] = 1, 2
    good = save_nifti(labels, cohort.affine, tmp_path / "atlas.nii.gz")
    atlas = load_atlas(good, labels.shape, cohort.affine)
    assert atlas.ids == (1, 2) and np.array_equal(atlas.labels, labels)
    shifted = cohort.affine.copy()
    shifted[0, 3] += 3.0
    moved = save_nifti(labels, shifted, tmp_path / "moved.nii.gz")
    with pytest.raises(InvalidInputError, match=r"atlas .*moved\.nii\.gz: parcellation affine"):
        load_atlas(moved, labels.shape, cohort.affine)
    small = save_nifti(labels[:30], cohort.affine, tmp_path / "small.nii.gz")
    with pytest.raises(InvalidInputError, match=r"atlas .*small\.nii\.gz: parcellation grid \(30, 73, 61\)"):
        load_atlas(small, labels.shape, cohort.affine)
    with pytest.raises(DataNotFoundError, match="absent"):
        load_atlas(tmp_path / "absent.nii.gz", labels.shape, cohort.affine)


def test_write_synthetic_caps_renders_session_by_session_and_resumes(tmp_path, monkeypatch):
    records = sample_synthetic_cohort(2, 2, seed=4, atrophy=0.6)
    memory = make_synthetic_cohort(2, 2, grid="smoke", seed=4, atrophy=0.6)
    seen = []
    write_synthetic_caps(records[:3], tmp_path / "c", "smoke",
                         progress=lambda step, total, logs: seen.append((step, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    (tmp_path / "c" / COHORT_TSV_NAME).unlink()  # as if interrupted before the TSV

    import wslbench.data.caps as caps_module

    rendered = []
    real = caps_module.render_synthetic_mri
    monkeypatch.setattr(caps_module, "render_synthetic_mri",
                        lambda rec, grid: rendered.append(rec.session_id) or real(rec, grid))
    write_synthetic_caps(records, tmp_path / "c", "smoke")
    assert len(rendered) == 1, "sessions already written are not rendered again"
    read = read_caps(tmp_path / "c")
    assert torch.equal(read.volumes[:], memory.volumes)
    assert torch.equal(read.atrophy_maps[:], memory.atrophy_maps)
    with pytest.raises(InvalidInputError, match="already exists"):
        write_synthetic_caps(records, tmp_path / "c", "smoke")


def _signal_volumes(tmp_path, n=12):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = 0.3 * torch.rand(n, 1, 12, 14, 12, generator=gen)
    x[y == 1, :, 3:8, 4:9, 3:8] += 0.6
    paths = [save_nifti(x[i, 0].numpy(), np.eye(4), tmp_path / f"v{i}.nii") for i in range(n)]
    return x, y, NiftiVolumeStore(paths)


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12 * 14 * 12, 2))


def test_training_and_prediction_accept_the_lazy_store(tmp_path):
    x, y, store = _signal_volumes(tmp_path)
    runs = [train_mri_cnn(_linear(), v, y, range(8), range(8, 12), epochs=2, batch_size=3,
                          lr=1e-2, seed=5) for v in (x, store)]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(runs[0].history, runs[1].history)
    model = runs[0].model
    assert torch.equal(predict_proba(model, x, 5, indices=[3, 1, 10]),
                       predict_proba(model, store, 5, indices=[3, 1, 10]))
    mask = torch.ones(12, 14, 12)
    mask[3:8, 4:9, 3:8] = 0.0
    assert prob_cnn(model, store, y, mask, batch_size=5) == prob_cnn(model, x, y, mask, batch_size=5)
    with pytest.raises(InvalidInputError, match=r"volumes must be a \(N, C, D, H, W\) tensor or a VolumeStore"):
        predict_proba(model, [x], 5)


def test_masks_are_optimised_on_a_lazy_store_as_on_the_tensor(tmp_path):
    from wslbench.attribution import MeaningfulPerturbation

    x, y, store = _signal_volumes(tmp_path, 6)
    model = train_mri_cnn(_linear(), x, y, range(4), range(4, 6), epochs=1, batch_size=2,
                          lr=1e-2, seed=5).model
    explainer = MeaningfulPerturbation(model, max_iter=3, batch_size=2, session_max_iter=3)
    ad = [1, 3, 5]
    group = [explainer.optimise_group(v[ad] if isinstance(v, torch.Tensor) else v.subset(ad), 1,
                                      v[[1]] if isinstance(v, torch.Tensor) else v.subset([1]), 1)
             for v in (x, store)]
    assert torch.equal(group[0].mask, group[1].mask) and torch.equal(group[0].history, group[1].history)
    session = [explainer.optimise_session(v, 1) for v in (x[ad], store.subset(ad))]
    assert torch.equal(session[0].mask, session[1].mask)
    nib.save(nib.Nifti1Image(np.full((12, 14, 12), np.inf, np.float32), np.eye(4)),
             tmp_path / "inf.nii")  # save_nifti refuses it: a file written elsewhere
    bad = NiftiVolumeStore([tmp_path / "inf.nii"])
    with pytest.raises(DataFormatError, match="non-finite"):
        explainer.optimise_session(bad, 1)
