"""MRI CNN training (Thibeau-Sutre et al. 2020, 2.2.1 and 2.2.3): balanced accuracy, early
stopping, subject-level age/sex-matched splits, the training loop and predictions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics import BalancedAccuracyMetric, compute_balanced_accuracy
from wslbench.models import build_mri_cnn
from wslbench.progress import StopRequested
from wslbench.training import (
    EarlyStopping,
    predict_proba,
    standardized_mean_difference,
    subject_level_cv,
    train_mri_cnn,
)

# ---------------------------------------------------------------- balanced accuracy


def test_balanced_accuracy_hand_worked() -> None:
    # recall of class 0: 2/3, of class 1: 2/2
    assert compute_balanced_accuracy([0, 0, 1, 1, 1], [0, 0, 0, 1, 1]) == pytest.approx(5 / 6)
    # (N, C) scores: argmax
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    assert compute_balanced_accuracy(scores, [0, 0, 1, 1]) == pytest.approx(0.5)


def test_balanced_accuracy_classes_absent_from_labels() -> None:
    # class 2 is only predicted: an error for class 0, no term of its own -> (1/2 + 1) / 2
    assert compute_balanced_accuracy([0, 2, 1], [0, 0, 1]) == pytest.approx(0.75)
    # one class only: its recall
    assert compute_balanced_accuracy([1, 0, 1, 1], [1, 1, 1, 1]) == pytest.approx(0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert balanced_accuracy_score([0, 0, 1], [0, 2, 1]) == pytest.approx(0.75)


def test_balanced_accuracy_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        labels = rng.integers(0, 4, size=30)
        preds = rng.integers(0, 4, size=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score(labels, preds)
        assert compute_balanced_accuracy(preds, labels) == pytest.approx(expected)


def test_balanced_accuracy_metric_accumulates_counts() -> None:
    metric = BalancedAccuracyMetric()
    metric([0, 1], [0, 0])  # class 1 absent from this batch
    metric(torch.tensor([1, 1, 0]), torch.tensor([1, 1, 1]))
    # class 0: 1/2, class 1: 2/3
    assert metric.aggregate() == pytest.approx(7 / 12)
    assert metric.aggregate() == pytest.approx(
        compute_balanced_accuracy([0, 1, 1, 1, 0], [0, 0, 1, 1, 1])
    )
    metric.reset()
    with pytest.raises(InvalidInputError, match="no data"):
        metric.aggregate()
    with pytest.raises(InvalidInputError, match="equal lengths"):
        compute_balanced_accuracy([0, 1], [0])
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        compute_balanced_accuracy([0, 1], [0, -1])


# ---------------------------------------------------------------- early stopping


def test_early_stopping_waits_patience_epochs_after_the_lowest_loss() -> None:
    stopper = EarlyStopping(patience=5)
    values = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93]
    # 0.9 at step 2 is the lowest; then five epochs not below it (a tie counts as bad)
    assert [stopper.step(v) for v in values] == [False] * 6 + [True]
    assert (stopper.best, stopper.best_step, stopper.bad_steps) == (0.9, 2, 5)


def test_early_stopping_resets_on_improvement() -> None:
    stopper = EarlyStopping(patience=2)
    assert [stopper.step(v) for v in [3, 4, 2, 5, 5]] == [False, False, False, False, True]
    assert stopper.best_step == 3 and not stopper.improved
    stopper.reset()
    assert stopper.best is None and stopper.steps == 0


def test_early_stopping_min_delta_absolute_relative_and_max_mode() -> None:
    absolute = EarlyStopping(patience=2, min_delta=0.1)
    assert [absolute.step(v) for v in [1.0, 0.95, 0.85]] == [False, False, False]
    assert absolute.best == 0.85 and absolute.best_step == 3  # 0.95 was not 0.1 below 1.0
    relative = EarlyStopping(patience=1, min_delta=0.05, relative=True)
    relative.step(2.0)
    assert not relative.is_improvement(1.91) and relative.is_improvement(1.89)
    maximise = EarlyStopping(patience=1, mode="max")
    assert [maximise.step(v) for v in [0.5, 0.6, 0.6]] == [False, False, True]


def test_early_stopping_stops_on_nan_and_validates() -> None:
    stopper = EarlyStopping(patience=5)
    stopper.step(1.0)
    assert stopper.step(float("nan")) is True
    assert stopper.best == 1.0
    for kwargs in ({"patience": 0}, {"mode": "mean"}, {"min_delta": -1.0}):
        with pytest.raises(ConfigError):
            EarlyStopping(**kwargs)


# ---------------------------------------------------------------- subject-level splits


def _cohort(seed: int = 0) -> dict[str, np.ndarray]:
    """40 subjects (20 CN, 20 AD), 1–3 sessions each, ages growing over sessions."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(40):
        label = "AD" if s % 2 else "CN"
        sex = "F" if (s // 2) % 2 else "M"
        age = 60 + rng.uniform(0, 25)
        for visit in range(1 + s % 3):
            rows.append((f"sub-{s:02d}", label, age + visit, sex))
    p, y, a, x = map(np.array, zip(*rows))
    return {"participants": p, "labels": y, "ages": a.astype(float), "sexes": x}


def test_subject_level_cv_keeps_subjects_on_one_side() -> None:
    c = _cohort()
    splits = subject_level_cv(**c)
    subjects = c["participants"]
    first = {s: i for i, s in reversed(list(enumerate(subjects)))}
    assert len(splits.folds) == 5
    test = splits.folds[0].test
    # round(0.3 * 40 / 2) = 6 subjects per class, one (baseline) session each
    assert len(test) == 12 and sorted(test) == sorted(first[s] for s in subjects[test])
    assert (np.unique(c["labels"][test], return_counts=True)[1] == 6).all()
    val_subjects = []
    for fold in splits.folds:
        np.testing.assert_array_equal(fold.test, test)
        train_s, val_s, test_s = (set(subjects[i]) for i in (fold.train, fold.val, test))
        assert not (train_s & val_s or train_s & test_s or val_s & test_s)
        assert train_s | val_s | test_s == set(subjects)
        # every session of a training subject; only the baseline of a validation subject
        assert set(fold.train) == {i for i, s in enumerate(subjects) if s in train_s}
        assert sorted(fold.val) == sorted(first[s] for s in val_s)
        val_subjects += sorted(val_s)
    assert sorted(val_subjects) == sorted(set(subjects) - set(subjects[test]))
    again = subject_level_cv(**c)
    np.testing.assert_array_equal(again.folds[2].val, splits.folds[2].val)
    other = subject_level_cv(**c, random_state=5)
    assert not np.array_equal(other.folds[0].test, test)
    everything = subject_level_cv(**c, baseline_only=False)
    tested = set(subjects[everything.folds[0].test])
    assert set(everything.folds[0].test) == {i for i, s in enumerate(subjects) if s in tested}


def test_subject_level_cv_matches_sex_across_classes() -> None:
    # CN: 2 F, 8 M; AD: 8 F, 2 M; one session each; one age bin (sex-only strata)
    sexes = np.array(["F"] * 2 + ["M"] * 8 + ["F"] * 8 + ["M"] * 2)
    labels = np.array(["CN"] * 10 + ["AD"] * 10)
    kw = {
        "participants": np.arange(20),
        "labels": labels,
        "ages": np.full(20, 70.0),
        "sexes": sexes,
        "n_splits": 2,
        "age_bins": 1,
    }

    def counts(test: np.ndarray) -> dict[tuple[str, str], int]:
        keys, n = np.unique(np.char.add(labels[test], sexes[test]), return_counts=True)
        return dict(zip(keys, n))

    # 2 per class; the cohort is half F, half M -> 1 F and 1 M per class
    assert counts(subject_level_cv(**kw, test_fraction=0.2).folds[0].test) == {
        "ADF": 1,
        "ADM": 1,
        "CNF": 1,
        "CNM": 1,
    }
    # 3 per class: 1.5 / 1.5, the tie goes to the first stratum (F) -> 2 F, 1 M
    splits = subject_level_cv(**kw, test_fraction=0.3)
    assert counts(splits.folds[0].test) == {"ADF": 2, "ADM": 1, "CNF": 2, "CNM": 1}
    row = splits.balance.set_index("comparison").loc["test AD vs test CN"]
    assert row["smd_sex"] == 0.0 and row["smd_age"] == 0.0 and row["balanced"]
    # 5 per class would need 3 F or 3 M of each class: CN has 2 F, AD 2 M
    with pytest.raises(InvalidInputError, match="matched"):
        subject_level_cv(**kw, test_fraction=0.5)


def test_subject_level_cv_balance_table_reports_smd() -> None:
    c = _cohort(1)
    splits = subject_level_cv(**c)
    table = splits.balance.set_index("comparison")
    assert list(table.index) == [
        "test AD vs test CN",
        "test vs train/val (AD)",
        "test vs train/val (CN)",
    ]
    subjects, first = np.unique(c["participants"], return_index=True)
    test = set(c["participants"][splits.folds[0].test])
    ad = [i for s, i in zip(subjects, first) if c["labels"][i] == "AD"]
    a = [i for i in ad if c["participants"][i] in test]
    b = [i for i in ad if c["participants"][i] not in test]
    row = table.loc["test vs train/val (AD)"]
    assert (row["n_a"], row["n_b"]) == (6, 14)
    assert row["smd_age"] == pytest.approx(standardized_mean_difference(c["ages"][a], c["ages"][b]))
    is_f = (c["sexes"] == "F").astype(float)
    assert row["smd_sex"] == pytest.approx(standardized_mean_difference(is_f[a], is_f[b]))
    assert subject_level_cv(**c, test_fraction=0.0).balance.empty


def test_standardized_mean_difference_hand_worked() -> None:
    assert standardized_mean_difference(np.array([0, 2]), np.array([2, 4])) == pytest.approx(-2)
    # proportions 0.5 and 0.25: 0.25 / sqrt((0.25 + 0.1875) / 2)
    value = standardized_mean_difference(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert value == pytest.approx(0.25 / math.sqrt(0.21875))
    assert standardized_mean_difference(np.array([1, 1]), np.array([1, 1])) == 0.0
    assert standardized_mean_difference(np.array([2, 2]), np.array([1, 1])) == math.inf


def test_subject_level_cv_rejects_inconsistent_subjects() -> None:
    c = _cohort()
    c["labels"] = c["labels"].copy()
    c["labels"][2] = "CN" if c["labels"][2] == "AD" else "AD"  # sub-01 has three sessions
    with pytest.raises(InvalidInputError, match="sub-01"):
        subject_level_cv(**c)
    with pytest.raises(InvalidInputError, match="one entry per session"):
        subject_level_cv(["a", "b"], [0, 1], [70.0], ["F", "M"])


# ---------------------------------------------------------------- training


def _volumes(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """1×16×20×16 volumes; class 1 has a brighter block."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = 0.3 * torch.rand(n, 1, 16, 20, 16, generator=gen)
    x[y == 1, :, 4:10, 5:12, 4:10] += 0.6
    return x, y


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 20 * 16, 2))


def _val_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: list[int]):
    probs = predict_proba(model, x, batch_size=3, indices=idx)
    loss = float(nn.functional.nll_loss(probs.log(), y[idx]))
    return loss, compute_balanced_accuracy(probs, y[idx])


def test_train_mri_cnn_learns_and_keeps_the_best_balanced_accuracy() -> None:
    x, y = _volumes()
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(16, 20, 16))
    train, val = list(range(16)), list(range(16, 24))
    result = train_mri_cnn(
        model, x, y, train, val, epochs=8, batch_size=4, lr=1e-2, weight_decay=0.0, seed=1
    )
    h = result.history
    assert list(h.columns) == ["epoch", "train_loss", "val_loss", "val_balanced_accuracy"]
    assert list(h.epoch) == list(range(1, len(h) + 1))
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    assert h.val_balanced_accuracy.max() >= 0.75
    # the kept epoch is the first with the highest balanced accuracy, and it is loaded
    assert result.best_epoch == int(h.val_balanced_accuracy.to_numpy().argmax()) + 1
    assert not result.model.training
    loss, ba = _val_metrics(result.model, x, y, val)
    best = h.iloc[result.best_epoch - 1]
    assert ba == pytest.approx(best.val_balanced_accuracy)
    assert loss == pytest.approx(best.val_loss, rel=1e-4)


def test_train_mri_cnn_early_stops_on_a_rising_validation_loss() -> None:
    x, y = _volumes(16)
    # validation: the training images with the opposite labels, so its loss rises
    xx, yy = torch.cat([x, x]), torch.cat([y, 1 - y])
    calls = []
    result = train_mri_cnn(
        _linear(),
        xx,
        yy,
        range(16),
        range(16, 32),
        epochs=30,
        batch_size=4,
        lr=1e-3,
        weight_decay=0.0,
        patience=3,
        seed=1,
        progress=lambda *a: calls.append(a[:2]),
    )
    h = result.history
    assert result.early_stopped and not result.interrupted
    assert len(h) == 4 and np.all(np.diff(h.val_loss) > 0)  # lowest at epoch 1, then 3 worse
    assert calls == [(1, 30), (2, 30), (3, 30), (4, 4)]
    # balanced accuracy ties (0 at every epoch): the first epoch is kept and loaded
    assert result.best_epoch == 1
    loss, _ = _val_metrics(result.model, xx, yy, list(range(16, 32)))
    assert loss == pytest.approx(h.val_loss.iloc[0], rel=1e-5)
    assert loss < h.val_loss.iloc[-1]


def test_train_mri_cnn_is_seeded_and_leaves_the_global_rng_alone() -> None:
    x, y = _volumes(12)
    kwargs = {"epochs": 2, "batch_size": 4, "lr": 1e-2, "weight_decay": 1e-4, "seed": 7}
    state = torch.get_rng_state()
    torch.manual_seed(0)
    first = train_mri_cnn(
        build_mri_cnn("smoke", input_shape=(16, 20, 16)), x, y, range(8), range(8, 12), **kwargs
    )
    torch.manual_seed(0)
    second = train_mri_cnn(
        build_mri_cnn("smoke", input_shape=(16, 20, 16)), x, y, range(8), range(8, 12), **kwargs
    )
    assert first.history.equals(second.history)
    torch.set_rng_state(state)
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(16, 20, 16))
    before = torch.get_rng_state()
    train_mri_cnn(model, x, y, range(8), range(8, 12), **kwargs)
    assert torch.equal(torch.get_rng_state(), before)


def test_train_mri_cnn_merges_a_trailing_batch_of_one() -> None:
    # 9 training volumes in batches of 4: 4, 4, 1 -> 4, 5 (batch norm cannot train on
    # one sample once the smoke CNN's maps are 1×1×1)
    x, y = _volumes(12)
    torch.manual_seed(0)
    model = build_mri_cnn("smoke", input_shape=(16, 20, 16))
    result = train_mri_cnn(model, x, y, range(9), range(9, 12), epochs=1, batch_size=4)
    assert len(result.history) == 1 and math.isfinite(result.history.train_loss.iloc[0])


def test_train_mri_cnn_can_be_interrupted() -> None:
    x, y = _volumes(12)

    def stop_at_two(epoch: int, total: int, logs) -> None:
        assert set(logs) == {"train_loss", "val_loss", "val_balanced_accuracy"}
        if epoch == 2:
            raise StopRequested

    result = train_mri_cnn(_linear(), x, y, range(8), range(8, 12), epochs=10, progress=stop_at_two)
    assert result.interrupted and not result.early_stopped and len(result.history) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"train_idx": [0, 1, 2], "val_idx": [2, 3]}, InvalidInputError, "disjoint"),
        ({"val_idx": [12]}, InvalidInputError, "index the 12"),
        ({"labels": [0, 1]}, InvalidInputError, "one per volume"),
        ({"volumes": torch.zeros(12, 16, 20, 16)}, InvalidInputError, r"\(N, C, D, H, W\)"),
        ({"lr": 0.0}, ConfigError, "lr"),
        ({"patience": 0}, ConfigError, "patience"),
    ],
)
def test_train_mri_cnn_rejects_bad_input(kwargs, error, match) -> None:
    x, y = _volumes(12)
    args = {"volumes": x, "labels": y, "train_idx": range(8), "val_idx": range(8, 12)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        train_mri_cnn(_linear(), **args, epochs=1)


def test_predict_proba_is_the_eval_mode_softmax() -> None:
    x, _ = _volumes(7)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * 20 * 16, 3)).train()
    probs = predict_proba(model, x, batch_size=3, indices=[5, 0, 2])
    assert model.training  # restored
    with torch.no_grad():
        expected = torch.softmax(model.eval()(x[[5, 0, 2]]), dim=1)
    torch.testing.assert_close(probs, expected)
    assert predict_proba(model, x, batch_size=2).shape == (7, 3)
