"""k-fold splits around a fixed held-out test set, and mean ± std reporting over folds.

Rony 2020, 2.1.2.2: "the test set is fixed in all the datasets, and only train
and validation sets are changed using a k-fold scheme ... we take 20 % of the
samples for validation, and 80 % for actual training. This leads to 5-folds
partitioning. We report the mean and standard deviation of each metric over the
trials in the following form: mean ± standard deviation." BACH (2.1.1): "half of
the samples of each class" form the test set. CAMELYON16 (2.1.2.3): the split is
made "at WSI-level ... This prevent patches from the same WSI to end up in
different sets", i.e. grouped splitting.

:func:`kfold_splits` draws the test set once (stratified by label, optionally
grouped), then partitions the remaining items into ``n_splits`` validation folds;
fold ``i`` trains on the other ``n_splits - 1``. With an official test set (GlaS,
CAMELYON16, BreakHis), pass only the training items and ``test_fraction=0``.

Assignment is greedy (as scikit-learn's ``StratifiedGroupKFold``): groups are
shuffled by ``random_state``, visited largest first, and each goes to the part
whose per-label counts it brings closest (in squared error) to that part's
target counts. Without groups every item is its own group, so per-label
proportions are matched to within one item per label and part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.seeding import numpy_rng
from wslbench.validation import as_1d

__all__ = ["Fold", "kfold_splits", "mean_std", "format_mean_std"]


@dataclass(frozen=True)
class Fold:
    """Index arrays (sorted int64) of one fold; ``test`` is the same in every fold."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _assign(counts: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Part index of every group: greedy squared-error matching of per-label targets.

    Args:
        counts: ``(G, K)`` items of each label in each group.
        targets: ``(P, K)`` wanted items of each label in each part.
        rng: shuffles the groups (ties in size and cost then depend on the seed).
    """
    order = rng.permutation(counts.shape[0])
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    filled = np.zeros_like(targets)
    part = np.empty(counts.shape[0], dtype=np.int64)
    for g in order:
        c = counts[g]
        # increase of sum_k (filled + c - target)^2 over sum_k (filled - target)^2
        cost = (2.0 * (filled - targets) * c + c * c).sum(1)
        p = int(np.argmin(cost))
        part[g] = p
        filled[p] += c
    return part


def kfold_splits(
    labels: Sequence[object] | np.ndarray | torch.Tensor,
    n_splits: int = 5,
    test_fraction: float = 0.2,
    groups: Sequence[object] | np.ndarray | torch.Tensor | None = None,
    random_state: int = 0,
) -> list[Fold]:
    """Stratified (optionally grouped) k-fold train/val splits around one fixed test set.

    Rony 2020, 2.1.2.2 (fixed test set, 5 folds of 80 % train / 20 % validation) and
    2.1.2.3 (WSI-level splits: all items of a group on the same side).

    Args:
        labels: ``(N,)`` label of each item (ints or strings), used for stratification.
        n_splits: number of folds ``k`` (>= 2); each fold validates on about
            ``1 / k`` of the non-test items.
        test_fraction: fraction of items held out as the fixed test set, in [0, 1)
            (0.5 for BACH; 0 when the data set has its own test set).
        groups: optional ``(N,)`` group id of each item (patient, slide, subject);
            a group is never split between test, validation and train.
        random_state: seed; the same inputs and seed give the same folds, and the
            test set does not depend on ``n_splits``.

    Returns:
        ``n_splits`` :class:`Fold` objects with disjoint ``train``, ``val`` and
        ``test`` that together cover ``range(N)``.
    """
    y = as_1d(labels, "labels")
    n = y.size
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise ConfigError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if not (isinstance(test_fraction, int | float) and 0.0 <= test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if groups is None:
        group_of = np.arange(n)
    else:
        g = as_1d(groups, "groups")
        if g.size != n:
            raise InvalidInputError(f"groups has {g.size} entries but labels has {n}")
        _, group_of = np.unique(g, return_inverse=True)
    _, label_of = np.unique(y, return_inverse=True)
    n_groups = int(group_of.max()) + 1
    counts = np.zeros((n_groups, int(label_of.max()) + 1))
    np.add.at(counts, (group_of, label_of), 1.0)
    rng = numpy_rng(random_state)

    totals = counts.sum(0)
    if test_fraction > 0:
        side = _assign(
            counts, np.stack([test_fraction * totals, (1 - test_fraction) * totals]), rng
        )
        if not (side == 0).any():
            raise InvalidInputError(
                f"test_fraction={test_fraction} leaves the test set empty with {n_groups} "
                "group(s); raise it or provide more groups"
            )
    else:
        side = np.ones(n_groups, dtype=np.int64)
    rest = np.flatnonzero(side == 1)
    if rest.size < n_splits:
        raise InvalidInputError(
            f"{rest.size} group(s) left after the test split cannot fill {n_splits} folds; "
            "lower n_splits or test_fraction"
        )
    rest_totals = counts[rest].sum(0)
    fold_of_rest = _assign(counts[rest], np.tile(rest_totals / n_splits, (n_splits, 1)), rng)
    if np.unique(fold_of_rest).size < n_splits:
        raise InvalidInputError(
            f"the {rest.size} non-test group(s) are too unequal in size to fill {n_splits} "
            "non-empty folds; lower n_splits"
        )
    fold_of_group = np.full(n_groups, -1, dtype=np.int64)  # -1: test
    fold_of_group[rest] = fold_of_rest
    fold_of_item = fold_of_group[group_of]
    test = np.flatnonzero(fold_of_item == -1)
    return [
        Fold(
            train=np.flatnonzero((fold_of_item >= 0) & (fold_of_item != i)),
            val=np.flatnonzero(fold_of_item == i),
            test=test,
        )
        for i in range(n_splits)
    ]


def mean_std(
    values: Sequence[float] | np.ndarray | torch.Tensor, ddof: int = 1
) -> tuple[float, float]:
    """Mean and standard deviation of a metric over folds (Rony 2020, 2.1.2.2).

    The thesis does not say which standard deviation it reports; the default
    ``ddof=1`` is the sample standard deviation (unbiased variance), the usual choice
    for a handful of trials; ``ddof=0`` gives the population one (NumPy's default).
    One value gives a standard deviation of 0 whatever ``ddof``.
    """
    arr = as_1d(values, "values").astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidInputError("values contain NaN or Inf; expected finite metric values")
    if ddof not in (0, 1):
        raise ConfigError(f"ddof must be 0 or 1, got {ddof!r}")
    std = float(np.std(arr, ddof=ddof)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def format_mean_std(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    digits: int = 2,
    scale: float = 1.0,
    ddof: int = 1,
) -> str:
    """``"mean ± std"`` as in the thesis's tables, e.g. ``"92.19 ± 3.54"``.

    Args:
        values: one metric value per fold.
        digits: decimals shown (2 in the thesis).
        scale: multiply first, e.g. 100 to show fractions as percentages.
        ddof: as in :func:`mean_std`.
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ConfigError(f"digits must be a non-negative integer, got {digits!r}")
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive finite number, got {scale!r}")
    mean, std = mean_std(values, ddof=ddof)
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"
