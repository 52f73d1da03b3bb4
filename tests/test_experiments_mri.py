"""The MRI experiment (Thibeau-Sutre et al. 2020) end to end on the smoke preset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wslbench.data import load_nifti
from wslbench.errors import ConfigError, RunError
from wslbench.experiments import mri
from wslbench.progress import StopRequested as StopRequestedError


@pytest.fixture(scope="module")
def smoke():
    """The smoke cohort; the masks are optimised on :class:`_Oracle`, a stand-in network
    that reads the atrophy (training the CNN is tested on its own), so the mask tests run
    in seconds and mean something."""
    config = mri.mri_config("smoke")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mri.masks, "train_fold_cached", _oracle_run)
        yield config, mri.make_mri_data(config)


@pytest.fixture(scope="module")
def small():
    """A 24-subject cohort for the training mechanics (seeding, caching, cancel, device)."""
    config = mri.mri_config("smoke", n_subjects=24, age_bins=1, epochs=2)
    return config, mri.make_mri_data(config)


def test_presets_and_errors():
    paper = mri.mri_config("paper")
    assert (paper.grid, paper.cnn, paper.lambda1, paper.lambda2, paper.beta1, paper.beta2) == (
        "paper", "paper", 1e-4, 1e-2, 0.1, 1.0)
    assert paper.mask_lr == 0.1
    # the paper's protocol, field by field (2.2.1, 2.2.3, 2.3.2, 2.3.5, 3.2.3, Fig. 4)
    assert (paper.epochs, paper.patience, paper.n_splits, paper.folds_to_run) == (30, 5, 5, 5)
    assert (paper.mask_epochs, paper.mask_tolerance, paper.mask_patience) == (150, 0.05, 5)
    assert paper.session_iterations == 5000 and paper.session_limit is None
    assert paper.session_factor == 100.0  # lambda x 100 for session masks (2.3.4)
    assert paper.beta1_values == (0.1, 0.5, 1.0, 2.0) and paper.beta2_values == (1.0, 2.0, 3.0)
    assert paper.lambda1_values == paper.lambda2_values == (0.1, 0.01, 0.001, 0.0001)
    assert paper.beta_lambda2 == 1e-3 and ("lambda2", 0.1, 0.01) in paper.mask_lr_cases
    assert (paper.stability_folds, paper.stability_runs) == (5, 5)
    with pytest.raises(ConfigError, match="unknown cnn"):
        mri.mri_config("smoke", cnn="huge")


def test_quality_check_and_subject_level_folds(smoke):
    config, data = smoke
    assert len(data.qc_rejected) >= config.n_qc_fail  # old subjects may fail naturally (2.3.1)
    assert all(max_value < 0.95 for _, _, max_value in data.qc_rejected)
    ids = np.asarray(data.cohort.participant_ids)
    for fold in data.folds:
        train, rest = set(ids[fold.train]), set(ids[fold.val]) | set(ids[fold.test])
        assert not train & rest, "all sessions of a subject on one side"


def test_training_is_seeded_and_masks_stay_in_range(smoke, small, tmp_path):
    config, data = smoke
    a, b = mri.train_fold(*small), mri.train_fold(*small)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)
    mask = mri.group_mask_cached(config, data).mask
    assert mask.shape == (1, 1, *data.cohort.volumes.shape[2:])
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert not ((mask > 0.95) & (mask < 1.0)).any(), "threshold rule: values above 0.95 become 1"
    report = mri.mask_report(config, data, mask)
    assert 0.0 <= report["prob_cnn_masked"] <= 1.0 and 0.0 <= report["dice_atrophy"] <= 1.0
    path = mri.save_mask_nifti(mask, data, tmp_path / "mask.nii.gz")
    loaded = load_nifti(path)
    np.testing.assert_allclose(loaded.affine, data.cohort.affine)
    np.testing.assert_allclose(loaded.data, mask[0, 0].numpy(), atol=1e-6)


def test_changing_the_mask_hyper_parameters_does_not_retrain(smoke, small):
    fast, cohort = small
    run = mri.train_fold_cached(fast, cohort)
    assert mri.train_fold_cached(replace(fast, beta1=2.0, lambda2=0.1), cohort) is run
    config, data = smoke
    table = mri.hyperparameter_similarity(config, data, "beta1", (0.1, 1.0))
    assert table.shape == (2, 2) and np.allclose(np.diag(table.values), 1.0)
    with pytest.raises(ConfigError, match="beta1, beta2"):
        mri.hyperparameter_similarity(config, data, "lr", (0.1,))


def test_session_masks_intra_and_inter_similarity(smoke):
    config, data = smoke
    sessions = mri.session_masks(replace(config, session_limit=4), data)
    masks, subjects = sessions.masks, sessions.subjects
    assert masks.shape[0] == len(subjects) == len(sessions.indices) <= 4 <= sessions.eligible
    assert all(subjects.count(s) >= 2 for s in subjects), "whole subjects only"
    ids = np.asarray(data.cohort.participant_ids)
    assert list(ids[sessions.indices]) == subjects and (data.cohort.labels[sessions.indices] == 1).all()
    intra, inter = mri.intra_inter(masks, subjects, data.atlas)
    assert intra is None or (-1.0 <= inter <= 1.0 and -1.0 <= intra <= 1.0)
    p_intra, p_inter = mri.session_prob_cnn(config, data, sessions)
    assert 0.0 <= p_intra <= 1.0 and 0.0 <= p_inter <= 1.0


def test_fold_masks_cross_prob_cnn_and_run_similarity(smoke, small):
    config, data = smoke
    masks = mri.fold_masks(config, data, [0, 1])
    assert list(masks) == ["fold 0", "fold 1"]
    cross = mri.cross_prob_cnn(config, data, masks, [0, 1])
    assert cross.shape == (2, 2) and ((cross.values >= 0) & (cross.values <= 1)).all()
    runs = mri.hyperparameter_similarity(config, data, "train_seed", [0, 1])
    assert runs.shape == (2, 2)
    fast, cohort = small
    assert mri.train_fold_cached(replace(fast, train_seed=1), cohort) is not mri.train_fold_cached(
        fast, cohort), "runs are independently trained"


def test_intra_inter_on_hand_made_masks(smoke):
    _, data = smoke
    labels = data.atlas.labels
    ids = np.unique(labels[labels > 0])
    masks = torch.ones(4, 1, *labels.shape)
    for i, region in enumerate((ids[0], ids[0], ids[5], ids[5])):
        masks[i, 0][torch.from_numpy(labels == region)] = 0.2
    masks[1, 0][torch.from_numpy(labels == ids[1])] = 0.5  # same subject, slightly different
    intra, inter = mri.intra_inter(masks, ["a", "a", "b", "b"], data.atlas)
    assert intra > 0.8 and inter < 0.1
    assert mri.intra_inter(torch.ones(4, 1, *labels.shape), ["a", "a", "b", "b"], data.atlas) == (
        None, None)


def test_similarity_table_leaves_unmoved_masks_empty(smoke):
    _, data = smoke
    labels = data.atlas.labels
    region = np.unique(labels[labels > 0])[0]
    moved = torch.ones(1, 1, *labels.shape)
    moved[0, 0][torch.from_numpy(labels == region)] = 0.3
    table = mri.mask_similarity_table({"moved": moved, "still": torch.ones_like(moved)}, data.atlas)
    assert table.loc["moved", "moved"] == pytest.approx(1.0)
    assert np.isnan(table.loc["still", "moved"]) and mri.table_values(table)[1] == [None, None]


def _cancel_after(epochs: int):
    from wslbench.progress import StopRequested

    def progress(step, total, info):
        if step >= epochs:
            raise StopRequested

    return progress


def test_a_cancelled_training_or_mask_is_returned_but_never_cached(smoke, small):
    fast, cohort = small
    fast = replace(fast, train_seed=7)  # a key no other test caches
    cut = mri.train_fold_cached(fast, cohort, progress=_cancel_after(1))
    assert cut.interrupted and len(cut.history) == 1
    full = mri.train_fold_cached(fast, cohort)
    assert not full.interrupted and len(full.history) > 1
    assert mri.train_fold_cached(fast, cohort) is full
    config, data = smoke
    config = replace(config, lambda1=0.003)  # a key no other test caches
    half = mri.group_mask_cached(config, data, progress=_cancel_after(1))
    assert half.interrupted and int(half.epochs.max()) == 1
    whole = mri.group_mask_cached(config, data)
    assert not whole.interrupted and int(whole.epochs.max()) > 1
    assert mri.group_mask_cached(config, data) is whole
    with pytest.raises(StopRequestedError):
        mri.hyperparameter_similarity(config, data, "lambda1", [0.0031, 0.0032],
                                      progress=_cancel_after(1))


def test_train_fold_uses_cuda_when_available_and_no_device_is_given(small, monkeypatch):
    config, data = small
    asked = []

    def fake(device):
        asked.append(device)
        return torch.device("cpu")

    monkeypatch.setattr(mri.train, "resolve_device", fake)
    mri.train_fold(replace(config, epochs=1), data)
    assert asked == [None]
    from wslbench.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


def test_no_mask_is_computed_on_a_cnn_at_chance(smoke):
    config, data = smoke
    strict = replace(config, min_val_balanced_accuracy=1.01, refuse_at_chance=True)  # no CNN reaches it
    with pytest.raises(RunError, match="at chance"):
        mri.group_mask(strict, data)
    with pytest.raises(RunError, match="min_val_balanced_accuracy"):
        mri.session_masks(strict, data)
    assert mri.mri_config("demo").refuse_at_chance and not mri.mri_config("smoke").refuse_at_chance


def test_the_smoke_preset_flags_instead_of_refusing(smoke, caplog):
    config, data = smoke
    flagged = replace(config, min_val_balanced_accuracy=1.01, refuse_at_chance=False)
    with caplog.at_level("WARNING", logger="wslbench"):
        run = mri.learned_run(flagged, data)
    assert mri.at_chance(run, flagged) and not mri.at_chance(run, config)
    assert "refuse_at_chance is off" in caplog.text


def test_masks_use_only_correctly_classified_ad_images(smoke):
    config, data = smoke

    class AlwaysCN(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[5.0, -5.0]]).repeat(len(x), 1)

    import pandas as pd

    history = pd.DataFrame({"epoch": [1], "val_balanced_accuracy": [0.5]})
    run = mri.MRIRun(AlwaysCN(), 0, history, 1, 0.5)
    assert run.val_balanced_accuracy == 0.5
    index = np.arange(len(data.cohort.labels))
    assert len(mri.masks._correct_ad(run, data, index, config)) == 0, "no silent fallback"


class _Oracle(torch.nn.Module):
    """Stand-in for a trained CNN: AD logit from the mean GM of the hippocampus and amygdala
    cores (where the synthetic atrophy always is), its threshold halfway between the CN and
    AD means of the training sessions and its slope 2 / (CN − AD) (AD probability about 0.73 at the AD mean); differentiable in the
    input, so masks can be optimised on it without training a network."""

    def __init__(self, data, train) -> None:
        super().__init__()
        from wslbench.data.synthetic_mri import ATROPHY_REGIONS, region_profile

        grid = data.cohort.grid.voxel_size
        w = sum(torch.from_numpy(region_profile(r, grid).copy()) for r in ATROPHY_REGIONS[:4])
        self.register_buffer("w", w / w.sum())
        score = (data.cohort.volumes[train, 0] * self.w).flatten(1).sum(1)
        y = data.cohort.labels[train]
        cn, ad = float(score[y == 0].mean()), float(score[y == 1].mean())
        self.threshold = (cn + ad) / 2
        self.scale = torch.nn.Parameter(torch.tensor(2.0 / (cn - ad)))

    def forward(self, x):
        z = self.scale * (self.threshold - (x[:, 0] * self.w).flatten(1).sum(1))
        return torch.stack([-z, z], 1)


def _oracle_run(config, data, fold=0, progress=None):
    import pandas as pd

    return mri.MRIRun(_Oracle(data, data.folds[fold].train), fold,
                      pd.DataFrame({"epoch": [1], "val_balanced_accuracy": [0.95]}), 1, 0.95)


def test_the_group_mask_of_a_network_that_reads_the_atrophy_finds_it(smoke):
    """Issue 24 item 3 protocol end to end on a network known to use the atrophy: the mask
    concentrates on the true atrophy and removes the AD decision (the mask_finds_atrophy claim)."""
    config, data = smoke
    mask = mri.group_mask_cached(config, data).mask
    report = mri.mask_report(config, data, mask)
    assert report["energy_ratio"] > 3.0 and report["ad_probability_drop"] > 0.5, report
    assert report["energy_in_atrophy"] == pytest.approx(report["energy_ratio"] * report["atrophy_share"])


def test_claims_are_declared_and_a_cnn_at_chance_reproduces_none_of_the_mask_claims(smoke, monkeypatch):
    import nbformat

    from wslbench.claims import judge
    from wslbench.experiments.mri import claims as mri_claims

    nb = nbformat.read("notebooks/05_mri_masks.ipynb", as_version=4)
    assert nb.metadata["wslbench"]["claims"] == "wslbench.experiments.mri:CLAIMS"
    assert [c.id for c in mri.CLAIMS.claims] == ["cnn_learns", "mask_finds_atrophy",
                                                 "stable_neighbours", "intra_gt_inter"]
    config, data = smoke
    at_chance = mri.MRIRun(torch.nn.Identity(), 0, None, 1, 0.5)
    monkeypatch.setattr(mri.MRIRun, "val_balanced_accuracy", property(lambda self: 0.5))
    monkeypatch.setattr(mri_claims, "make_mri_data", lambda c: data)
    monkeypatch.setattr(mri_claims, "train_fold_cached", lambda c, d, f: at_chance)
    seeds = [mri_claims.measure("smoke", s) for s in (0, 1)]
    assert np.isnan(seeds[0]["energy_in_atrophy"]) and seeds[0]["val_balanced_accuracy"] == 0.5
    verdicts = {c.id: judge(c, seeds) for c in mri.CLAIMS.claims}
    assert not any(v["reproduced"] for v in verdicts.values())
    assert all(v["below_floor"] for k, v in verdicts.items() if k != "cnn_learns")


def test_neighbour_similarity_counts_a_mask_that_perturbs_nothing_as_zero(smoke):
    """stable_neighbours (3.2.3): the same mask is similar 1; an all-ones neighbour (its
    regularisation won) shares no location and counts 0 instead of an undefined cosine."""
    from wslbench.experiments.mri.claims import _neighbour_similarity

    _, data = smoke
    labels = data.atlas.labels
    base = torch.ones((1, 1, *labels.shape))
    base[0, 0][torch.from_numpy(labels == 1)] = 0.2
    still = torch.ones_like(base)
    assert _neighbour_similarity(base, [base.clone()], labels) == pytest.approx(1.0)
    assert _neighbour_similarity(base, [base.clone(), still], labels) == pytest.approx(0.5)
    assert np.isnan(_neighbour_similarity(still, [base], labels))
