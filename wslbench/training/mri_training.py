"""Subject-level splits and training of the AD-vs-CN 3D CNN (Thibeau-Sutre 2020, 2.2.1 and 2.2.3).

**Splits** (2.2.1): "The ADNI test set consisted of 100 randomly chosen age- and
sex-matched subjects for each diagnostic class ... We ensured that age and sex
distributions between training/validation and test sets were not significantly
different ... a 5-fold cross-validation (CV) was performed ... with a fixed seed
number (random_state = 2) ... Test and validation sets included only one session
per subject." :func:`subject_level_cv` makes those splits; the paper does not say
how the matching was done, so it is done as follows.

- A subject's diagnosis and sex must be the same in all its sessions; its age is
  the age at its *baseline* session, the first one listed (sort sessions by
  session id, e.g. ``ses-M00`` first, as in ClinicaDL's TSV files).
- **Test draw.** Every class gets the same number of test subjects,
  ``n = round(test_fraction · subjects / classes)``. Subjects fall into strata
  sex × age bin (``age_bins`` quantile bins of the baseline ages of all
  subjects). The ``n`` test slots are shared among the strata in proportion to
  the strata's frequency in the whole cohort (largest remainders), capped by the
  subjects the *scarcest* class has in each stratum (slots a stratum cannot fill
  go to the most under-filled strata that still can). Every class then draws the
  same number of subjects in every stratum, at random: the classes of the test
  set have identical sex counts and age distributions equal up to the bins, and
  the test set follows the cohort's sex × age distribution.
- **Check.** :attr:`SubjectSplits.balance` reports the standardized mean
  difference (SMD) of baseline age and of the sex proportion between the test
  classes and, per class, between the test and the training/validation
  subjects, with ``|SMD| < 0.1`` flagged as balanced (the usual threshold for a
  negligible imbalance, Austin 2009).
- **Folds.** The remaining subjects (one item per subject) are split into
  ``n_splits`` folds by :func:`~wslbench.training.kfold_splits`, stratified by
  diagnosis, with the same ``random_state``: the split is deterministic, made
  once, and every experiment sees the same subjects. (The assignment algorithm
  is wslbench's, so the subjects differ from the paper's scikit-learn folds.)
- Training sets hold every session of their subjects; validation and test sets
  hold only the baseline session (``baseline_only=True``, the paper) or all.

**Training** (2.2.3): "the training procedure does not stop until the
validation loss is continuously higher than the lowest validation loss for N
epochs (N=5); otherwise, the training continues to the end of a pre-defined
number of epochs (30). The training and validation loss were computed with the
cross-entropy loss. For each experiment, the final model was the one that
obtained the highest validation balanced accuracy during training. The balanced
accuracy of the model was evaluated at the end of each epoch." The optimiser,
learning rate, weight decay and batch size were chosen by random search (2.2.2)
and their values are not in the text. :func:`train_mri_cnn` uses Adam (the
optimiser of the authors' ClinicaDL tool) with, by default, ``lr = 1e-4``,
``weight_decay = 1e-4`` and batches of 8: assumptions, not the paper's values.
Other choices: the mean cross-entropy over each mini-batch, without class
weights; the epoch's training loss is the mean over its samples of the
batch losses in train mode; the validation loss and balanced accuracy are
computed in eval mode; the first epoch reaching the highest validation balanced
accuracy is kept (a later tie does not replace it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from wslbench.data.splits import Fold, kfold_splits
from wslbench.data.volume_store import VolumeStore, as_volume_store
from wslbench.errors import ConfigError, InvalidInputError
from wslbench.metrics.balanced_accuracy import compute_balanced_accuracy
from wslbench.model_state import preserved_model_state
from wslbench.progress import ProgressCallback
from wslbench.seeding import numpy_rng, torch_generator
from wslbench.training.early_stopping import EarlyStopping
from wslbench.training.loop import StepOutput, fit, index_batches
from wslbench.validation import as_1d, check_int, check_number

__all__ = [
    "MRITrainingResult",
    "SubjectSplits",
    "predict_proba",
    "standardized_mean_difference",
    "subject_level_cv",
    "train_mri_cnn",
]

_BALANCE_COLUMNS = ("comparison", "n_a", "n_b", "smd_age", "smd_sex", "balanced")
_SMD_BALANCED = 0.1


@dataclass(frozen=True)
class SubjectSplits:
    """Subject-level CV folds of session indices, and the age/sex balance of the test set.

    Attributes:
        folds: ``n_splits`` :class:`~wslbench.training.Fold` objects of session
            indices (``test`` is the same in every fold).
        balance: one row per comparison with columns ``comparison``, ``n_a``,
            ``n_b`` (subjects on each side), ``smd_age``, ``smd_sex`` and
            ``balanced`` (both ``|SMD| < 0.1``); empty without a test set.
    """

    folds: list[Fold]
    balance: pd.DataFrame


def standardized_mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``(mean(a) − mean(b)) / sqrt((var(a) + var(b)) / 2)`` (population variances).

    For 0/1 values this is the SMD of proportions, ``(p_a − p_b) /
    sqrt((p_a(1 − p_a) + p_b(1 − p_b)) / 2)``. Equal means give 0 (also when both
    variances are 0); different means with zero variances give ``±inf``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise InvalidInputError("standardized_mean_difference needs two non-empty samples")
    diff = float(a.mean() - b.mean())
    scale = math.sqrt((float(a.var()) + float(b.var())) / 2.0)
    if diff == 0.0:
        return 0.0
    return diff / scale if scale > 0 else math.copysign(math.inf, diff)


def _allocate(n: int, freq: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Slots per stratum: ``n · freq`` by largest remainders, capped by ``capacity``."""
    ideal = n * freq
    slots = np.floor(ideal).astype(np.int64)
    order = np.argsort(-(ideal - slots), kind="stable")
    slots[order[: n - int(slots.sum())]] += 1
    slots = np.minimum(slots, capacity)
    while slots.sum() < n:
        open_ = np.flatnonzero(slots < capacity)
        if open_.size == 0:
            raise InvalidInputError(
                f"cannot draw {n} age- and sex-matched test subjects per class: the scarcest "
                f"class has only {int(capacity.sum())} subjects in strata the others share; "
                "lower test_fraction or age_bins"
            )
        slots[open_[np.argmax(ideal[open_] - slots[open_])]] += 1
    return slots


def _strata(sexes: np.ndarray, ages: np.ndarray, age_bins: int) -> np.ndarray:
    """Stratum index of every subject: sex × age quantile bin."""
    _, sex_code = np.unique(sexes, return_inverse=True)
    edges = np.unique(np.quantile(ages, np.linspace(0.0, 1.0, age_bins + 1))[1:-1])
    age_code = np.searchsorted(edges, ages, side="right")
    return sex_code * (edges.size + 1) + age_code


def _balance_row(
    name: str, a: np.ndarray, b: np.ndarray, ages: np.ndarray, is_first_sex: np.ndarray
) -> dict:
    smd_age = standardized_mean_difference(ages[a], ages[b])
    smd_sex = standardized_mean_difference(is_first_sex[a], is_first_sex[b])
    return {
        "comparison": name,
        "n_a": int(a.size),
        "n_b": int(b.size),
        "smd_age": smd_age,
        "smd_sex": smd_sex,
        "balanced": bool(abs(smd_age) < _SMD_BALANCED and abs(smd_sex) < _SMD_BALANCED),
    }


def _constant_per_subject(
    values: np.ndarray, first: np.ndarray, subject_of: np.ndarray, subjects: np.ndarray, name: str
) -> None:
    bad = np.unique(subject_of[values[first][subject_of] != values])
    if bad.size:
        shown = ", ".join(map(str, subjects[bad][:5]))
        raise InvalidInputError(
            f"{name} must be the same in every session of a subject; subject(s) {shown} "
            f"({bad.size} in all) have several"
        )


def subject_level_cv(
    participants: Sequence[object] | np.ndarray,
    labels: Sequence[object] | np.ndarray | torch.Tensor,
    ages: Sequence[float] | np.ndarray | torch.Tensor,
    sexes: Sequence[object] | np.ndarray,
    *,
    n_splits: int = 5,
    random_state: int = 2,
    test_fraction: float = 0.3,
    age_bins: int = 5,
    baseline_only: bool = True,
) -> SubjectSplits:
    """Subject-level k-fold CV around an age- and sex-matched test set (Thibeau-Sutre 2020, 2.2.1).

    See the module docstring for the matching procedure. All sessions of a subject
    end up on the same side (train, validation or test).

    Args:
        participants: ``(N,)`` subject id of every session (``participant_id``).
        labels: ``(N,)`` diagnosis of every session (``diagnosis``).
        ages: ``(N,)`` age at every session; the first listed session of a
            subject is its baseline.
        sexes: ``(N,)`` sex of every session (two values at most, e.g. ``"M"``/``"F"``).
        n_splits: number of CV folds (5 in the paper).
        random_state: seed of the test draw and of the folds (2 in the paper).
        test_fraction: share of subjects in the test set, in [0, 1): each class
            gets ``round(test_fraction · subjects / classes)`` of them (200 of 666
            ADNI subjects, 0.3, in the paper); 0 for no test set (e.g. AIBL used as
            an external one).
        age_bins: quantile bins of baseline age used for the matching, >= 1.
        baseline_only: keep only the baseline session of validation and test
            subjects (the paper); False keeps all their sessions.

    Returns:
        :class:`SubjectSplits` whose folds hold sorted int64 session indices.
    """
    subj = as_1d(participants, "participants")
    y = as_1d(labels, "labels")
    age = as_1d(ages, "ages").astype(np.float64)
    sex = as_1d(sexes, "sexes")
    n = subj.size
    if not (y.size == age.size == sex.size == n):
        raise InvalidInputError(
            f"participants, labels, ages and sexes must have one entry per session; got "
            f"{n}, {y.size}, {age.size} and {sex.size}"
        )
    if not np.isfinite(age).all():
        raise InvalidInputError("ages contain NaN or Inf; expected finite ages")
    if isinstance(age_bins, bool) or not isinstance(age_bins, int) or age_bins < 1:
        raise ConfigError(f"age_bins must be an integer >= 1, got {age_bins!r}")
    if not (isinstance(test_fraction, int | float) and 0.0 <= test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    subjects, first, subject_of = np.unique(subj, return_index=True, return_inverse=True)
    _constant_per_subject(y, first, subject_of, subjects, "the diagnosis")
    _constant_per_subject(sex, first, subject_of, subjects, "the sex")
    sex_values = np.unique(sex)
    if sex_values.size > 2:
        raise InvalidInputError(
            f"sexes must take at most two values, got {sex_values.size}: {sex_values.tolist()}"
        )
    s_label, s_sex, s_age = y[first], sex[first], age[first]
    classes, s_class = np.unique(s_label, return_inverse=True)
    n_subjects = subjects.size

    test = np.zeros(n_subjects, dtype=bool)
    per_class = round(test_fraction * n_subjects / classes.size)
    if test_fraction > 0:
        if per_class == 0:
            raise InvalidInputError(
                f"test_fraction={test_fraction} gives no test subject per class with "
                f"{n_subjects} subjects in {classes.size} classes; raise it"
            )
        stratum = _strata(s_sex, s_age, age_bins)
        n_strata = int(stratum.max()) + 1
        avail = np.zeros((classes.size, n_strata), dtype=np.int64)
        np.add.at(avail, (s_class, stratum), 1)
        freq = np.bincount(stratum, minlength=n_strata) / n_subjects
        slots = _allocate(per_class, freq, avail.min(axis=0))
        rng = numpy_rng(random_state)
        for k in range(classes.size):
            for s in np.flatnonzero(slots):
                pool = np.flatnonzero((s_class == k) & (stratum == s))
                test[rng.choice(pool, size=int(slots[s]), replace=False)] = True

    rest = np.flatnonzero(~test)
    fold_of_subject = np.full(n_subjects, -1, dtype=np.int64)  # -1: test
    for i, fold in enumerate(
        kfold_splits(s_label[rest], n_splits, test_fraction=0.0, random_state=random_state)
    ):
        fold_of_subject[rest[fold.val]] = i

    def sessions(chosen: np.ndarray, evaluation: bool) -> np.ndarray:
        if evaluation and baseline_only:
            return np.sort(first[chosen])
        return np.flatnonzero(chosen[subject_of])

    test_sessions = sessions(test, True)
    folds = [
        Fold(
            train=sessions((fold_of_subject >= 0) & (fold_of_subject != i), False),
            val=sessions(fold_of_subject == i, True),
            test=test_sessions,
        )
        for i in range(n_splits)
    ]

    rows = []
    if test.any():
        is_first_sex = (s_sex == sex_values[0]).astype(np.float64)
        in_class = [s_class == k for k in range(classes.size)]
        for a in range(classes.size):
            for b in range(a + 1, classes.size):
                rows.append(
                    _balance_row(
                        f"test {classes[a]} vs test {classes[b]}",
                        np.flatnonzero(test & in_class[a]),
                        np.flatnonzero(test & in_class[b]),
                        s_age,
                        is_first_sex,
                    )
                )
        for k in range(classes.size):
            rows.append(
                _balance_row(
                    f"test vs train/val ({classes[k]})",
                    np.flatnonzero(test & in_class[k]),
                    np.flatnonzero(~test & in_class[k]),
                    s_age,
                    is_first_sex,
                )
            )
    return SubjectSplits(folds=folds, balance=pd.DataFrame(rows, columns=list(_BALANCE_COLUMNS)))


@dataclass(frozen=True)
class MRITrainingResult:
    """Outcome of :func:`train_mri_cnn`.

    Attributes:
        model: the trained model, with the state of ``best_epoch`` loaded, in eval mode.
        history: one row per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``,
            ``val_balanced_accuracy``.
        best_epoch: epoch with the highest validation balanced accuracy (the kept one).
        early_stopped: whether early stopping ended the training before ``epochs``.
        interrupted: whether a progress callback raised :class:`StopRequested`.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    early_stopped: bool
    interrupted: bool


def _check_volumes(volumes: torch.Tensor | VolumeStore) -> VolumeStore:
    """``volumes`` as a store (a 5-D tensor is wrapped, a store kept: batches are read on demand)."""
    return as_volume_store(volumes, "volumes")


def _indices(values: object, n: int, name: str) -> torch.Tensor:
    idx = as_1d(values, name)
    if not np.issubdtype(idx.dtype, np.integer):
        raise InvalidInputError(f"{name} must hold integer session indices, got {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise InvalidInputError(f"{name} must index the {n} volumes (0 … {n - 1})")
    return torch.as_tensor(idx, dtype=torch.int64)


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _logits(
    model: nn.Module, volumes: VolumeStore, indices: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(indices, logits)`` per batch, in eval mode without gradients (mode restored)."""
    device = _device(model)
    with preserved_model_state(model), torch.no_grad():
        model.eval()
        for idx in torch.split(indices, batch_size):
            yield idx, model(volumes[idx].to(device=device, dtype=torch.float32))


def predict_proba(
    model: nn.Module,
    volumes: torch.Tensor | VolumeStore,
    batch_size: int = 8,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax class probabilities of ``volumes`` in eval mode, batch by batch (2.2.2).

    Only one batch of volumes is copied (and moved to the model's device) at a
    time, so ``volumes`` may be a large CPU tensor or a lazy
    :class:`~wslbench.data.volume_store.VolumeStore` (read one batch at a time).

    Args:
        model: maps ``(B, C, D, H, W)`` to ``(B, K)`` logits.
        volumes: ``(N, C, D, H, W)`` volumes (tensor or store).
        batch_size: volumes per forward pass.
        indices: the volumes to predict (default: all), in this order.

    Returns:
        ``(len(indices), K)`` float32 probabilities on the CPU.
    """
    volumes = _check_volumes(volumes)
    check_int("batch_size", batch_size)
    n = volumes.shape[0]
    idx = torch.arange(n) if indices is None else _indices(indices, n, "indices")
    out = [torch.softmax(z, dim=1).cpu() for _, z in _logits(model, volumes, idx, batch_size)]
    return torch.cat(out)


def _evaluate(
    model: nn.Module,
    volumes: VolumeStore,
    labels: torch.Tensor,
    idx: torch.Tensor,
    batch_size: int,
) -> tuple[float, float]:
    """Mean cross-entropy and balanced accuracy on ``idx`` (eval mode)."""
    loss, preds = 0.0, []
    for batch, z in _logits(model, volumes, idx, batch_size):
        target = labels[batch].to(z.device)
        loss += float(nn.functional.cross_entropy(z, target, reduction="sum"))
        preds.append(z.argmax(dim=1).cpu())
    return loss / idx.numel(), compute_balanced_accuracy(torch.cat(preds), labels[idx])


def train_mri_cnn(
    model: nn.Module,
    volumes: torch.Tensor | VolumeStore,
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    train_idx: Sequence[int] | np.ndarray | torch.Tensor,
    val_idx: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    epochs: int = 30,
    batch_size: int = 8,
    lr: float = 1e-4,
    weight_decay: float = 1e-4,
    patience: int = 5,
    progress: ProgressCallback | None = None,
    seed: int = 0,
) -> MRITrainingResult:
    """Train the CNN with cross-entropy and Adam, early stopping and BA model selection (2.2.3).

    Every epoch visits the training volumes once in a seeded random order, in
    batches copied from ``volumes`` one at a time; then the validation loss and
    balanced accuracy are computed. Training stops after ``epochs`` epochs or once
    the validation loss has not gone below its lowest value for ``patience``
    epochs (:class:`~wslbench.training.EarlyStopping`); the state with the highest
    validation balanced accuracy is loaded at the end. The same seed gives the
    same model and history (the global RNG is forked, not changed).

    Args:
        model: maps ``(B, C, D, H, W)`` to ``(B, K)`` logits (e.g.
            :func:`~wslbench.models.build_mri_cnn`); trained in place.
        volumes: ``(N, C, D, H, W)`` volumes: a CPU tensor, or a lazy
            :class:`~wslbench.data.volume_store.VolumeStore` whose batches are read from
            disk as they are needed; batches move to the model's device.
        labels: ``(N,)`` class indices.
        train_idx: sessions to train on.
        val_idx: sessions to validate on (disjoint from ``train_idx``).
        epochs: maximum number of epochs (30 in the paper).
        batch_size: volumes per step (a trailing batch of one joins the previous).
        lr: Adam learning rate (not given by the paper; see the module docstring).
        weight_decay: Adam weight decay (idem).
        patience: early-stopping patience in epochs (5 in the paper).
        progress: called as ``progress(epoch, total, logs)`` after each epoch; may
            raise :class:`StopRequested` to stop: the best state so far is kept
            and the result is returned with ``interrupted=True``.
        seed: seeds the data order, dropout and any other draw during training.

    Returns:
        :class:`MRITrainingResult`.
    """
    volumes = _check_volumes(volumes)
    n = volumes.shape[0]
    y_arr = as_1d(labels, "labels")
    if y_arr.size != n or not np.issubdtype(y_arr.dtype, np.integer) or y_arr.min() < 0:
        raise InvalidInputError(
            f"labels must be {n} non-negative integer class indices, one per volume; got "
            f"{y_arr.size} of dtype {y_arr.dtype}"
        )
    y = torch.as_tensor(y_arr, dtype=torch.int64)
    train = _indices(train_idx, n, "train_idx")
    val = _indices(val_idx, n, "val_idx")
    overlap = np.intersect1d(train.numpy(), val.numpy())
    if overlap.size:
        raise InvalidInputError(
            f"train_idx and val_idx share {overlap.size} session(s) (e.g. {overlap[:5].tolist()});"
            " expected disjoint sets"
        )
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    check_number("lr", lr)
    check_number("weight_decay", weight_decay, allow_zero=True)
    device = _device(model)
    cuda = [device] if device.type == "cuda" else []

    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        order_gen = torch_generator(seed)

        def batches(epoch: int) -> list[torch.Tensor]:
            return index_batches(train[torch.randperm(train.numel(), generator=order_gen)], batch_size)

        def step(idx: torch.Tensor) -> StepOutput:
            x = volumes[idx].to(device=device, dtype=torch.float32)
            return StepOutput(nn.functional.cross_entropy(model(x), y[idx].to(device)),
                              weight=idx.numel())

        def validate() -> dict[str, float]:
            val_loss, val_ba = _evaluate(model, volumes, y, val, batch_size)
            return {"val_loss": val_loss, "val_balanced_accuracy": val_ba}

        fitted = fit(model, step, batches, epochs=epochs,
                     optimiser=torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay),
                     validate=validate, select="val_balanced_accuracy", ties="earliest",
                     early_stopping=EarlyStopping(patience=patience), monitor="val_loss",
                     progress=progress, report_every="epoch")
    history = pd.DataFrame(
        [{"epoch": r["epoch"], "train_loss": r["train_loss"], "val_loss": r["val_loss"],
          "val_balanced_accuracy": r["val_balanced_accuracy"]} for r in fitted.history],
        columns=["epoch", "train_loss", "val_loss", "val_balanced_accuracy"],
    )
    return MRITrainingResult(
        model=model,
        history=history,
        best_epoch=fitted.best.epoch if fitted.best is not None else 0,
        early_stopped=fitted.early_stopped,
        interrupted=fitted.interrupted,
    )
