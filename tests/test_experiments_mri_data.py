"""The MRI experiment on lazily read cohorts: the paper preset's on-disk cohort and a user's
CAPS-like ``data_dir`` without ground truth (issue 24 items 4–5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wslbench.data.caps as caps_module
from tests.test_experiments_mri import _oracle_run
from wslbench.data import (
    CohortRecord,
    NiftiVolumeStore,
    default_parcellation,
    save_nifti,
    write_cohort,
    write_cohort_tsv,
)
from wslbench.data.synthetic_mri import make_synthetic_cohort
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import mri

_SMALL = {"n_splits": 2, "test_fraction": 0.2, "age_bins": 1}


def test_the_paper_preset_generates_its_cohort_to_disk_and_reads_it_lazily(tmp_path, monkeypatch):
    assert mri.mri_config("paper").cohort_on_disk and not mri.mri_config("smoke").cohort_on_disk
    monkeypatch.setenv("WSLBENCH_CACHE_DIR", str(tmp_path))
    config = mri.mri_config("paper", grid="smoke", n_subjects=10, sessions_per_subject=2, **_SMALL)
    memory = make_synthetic_cohort(10, 2, grid="smoke", seed=0, atrophy=config.atrophy,
                                   n_qc_fail=config.n_qc_fail, region_dropout=config.region_dropout,
                                   weight_jitter=config.weight_jitter, location_mm=config.location_mm,
                                   asymmetry_sd=config.asymmetry_sd, cn_decoy=config.cn_decoy)

    def never(*args, **kwargs):
        raise AssertionError("the on-disk cohort must not be built in memory")

    monkeypatch.setattr(mri.data, "make_synthetic_cohort", never)
    data = mri.make_mri_data(config)
    cohort = data.cohort
    assert isinstance(cohort.volumes, NiftiVolumeStore)
    assert isinstance(cohort.atrophy_maps, NiftiVolumeStore)
    assert all(mri.mri_cohort_cache_dir() in p.parents for p in cohort.volumes.paths)
    kept = [memory.keys.index(k) for k in cohort.keys]
    assert len(kept) == len(memory) - len(data.qc_rejected) and data.qc_rejected
    assert torch.equal(cohort.volumes[:], memory.volumes[kept])
    assert torch.equal(cohort.atrophy_maps[[0, -1]], memory.atrophy_maps[[kept[0], kept[-1]]])
    np.testing.assert_array_equal(data.atlas.labels, default_parcellation("smoke").labels)

    monkeypatch.setattr(caps_module, "render_synthetic_mri", never)
    again = mri.make_mri_data(config)  # the cached folder is read, nothing rendered
    assert again.cohort.keys == cohort.keys
    assert [f.train.tolist() for f in again.folds] == [f.train.tolist() for f in data.folds]
    assert len(list(mri.mri_cohort_cache_dir().iterdir())) == 1


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A CAPS-like folder of 12 subjects × 2 sessions without ground-truth atrophy maps."""
    cohort = make_synthetic_cohort(12, 2, grid="smoke", seed=2, n_qc_fail=1, atrophy=0.6)
    folder = tmp_path_factory.mktemp("user") / "caps"
    write_cohort(cohort, folder, atrophy_maps=False)
    return cohort, folder


def test_a_user_folder_runs_the_experiment_without_ground_truth(user_folder, monkeypatch):
    cohort, folder = user_folder
    config = mri.mri_config("smoke", data_dir=str(folder), epochs=1, mask_epochs=2, **_SMALL)
    data = mri.make_mri_data(config)
    assert isinstance(data.cohort.volumes, NiftiVolumeStore) and data.cohort.atrophy_maps is None
    assert len(data.cohort) + len(data.qc_rejected) == len(cohort) and data.qc_rejected
    run = mri.train_fold(config, data)  # the CNN trains on batches read from disk
    assert 0.0 <= run.test_balanced_accuracy <= 1.0
    monkeypatch.setattr(mri.masks, "train_fold_cached", _oracle_run)
    mask = mri.group_mask(config, data).mask
    report = mri.mask_report(config, data, mask)
    assert all(report[k] is None for k in mri.TRUTH_METRICS)
    assert 0.0 <= report["prob_cnn_masked"] <= 1.0 and report["prob_cnn_clean"] > 0.5
    assert len(mri.group_vs_truth_figure(data, mask).axes) == 3  # the mask only, no truth row
    speck = torch.ones_like(mask)
    speck[0, 0, 2, 2, 2] = 0.0  # one voxel outside the brain
    speck[0, 0, 20:26, 30:36, 20:26] = 0.5  # a blob inside
    centre = mri.atrophy_centre(data, speck)
    assert all(a <= c <= b for c, a, b in zip(centre, (20, 30, 20), (25, 35, 25))), centre
    assert data.atlas.labels[centre] > 0
    sessions = mri.session_masks(config, data)
    fig = mri.session_masks_figure(data, sessions)
    assert not any(ax.collections for ax in fig.axes), "no truth contour without ground truth"


def test_a_user_atlas_is_used_and_checked(user_folder, tmp_path):
    cohort, folder = user_folder
    labels = np.zeros(cohort.volumes.shape[2:], np.int32)
    labels[5:25, 20:50, 10:40], labels[35:55, 20:50, 10:40] = 1, 2
    atlas = save_nifti(labels, cohort.affine, tmp_path / "aal2.nii.gz")
    data = mri.make_mri_data(mri.mri_config("smoke", data_dir=str(folder), atlas_path=str(atlas),
                                            **_SMALL))
    assert data.atlas.ids == (1, 2) and np.array_equal(data.atlas.labels, labels)
    coarse = save_nifti(labels[::2, ::2, ::2], cohort.affine, tmp_path / "coarse.nii.gz")
    with pytest.raises(InvalidInputError, match=r"atlas .*coarse\.nii\.gz: parcellation grid"):
        mri.make_mri_data(mri.mri_config("smoke", data_dir=str(folder), atlas_path=str(coarse)))


def test_maps_on_an_unknown_grid_need_an_atlas(tmp_path):
    rows = []
    for i, diagnosis in enumerate(("AD", "CN")):
        path = save_nifti(np.ones((10, 12, 10), np.float32), np.eye(4), tmp_path / f"m{i}.nii.gz")
        rows.append(CohortRecord(f"sub-{i}", "ses-M00", diagnosis, 70.0, "F", path))
    write_cohort_tsv(rows, tmp_path / "participants.tsv")
    with pytest.raises(ConfigError, match=r"10×12×10 grid .*pass atlas_path"):
        mri.make_mri_data(mri.mri_config("smoke", data_dir=str(tmp_path)))
