"""Labelled / unlabelled minibatch sampler of "AE-CL combined" training (Arora et al., 4.3).

Arora, Gaudio, Satpathy, "Semi-supervised learning for Diabetic Retinopathy".

"We implemented a random sampling data loader that samples labeled and
unlabeled minibatches without replacement. Minibatches are sampled based on the
size of the respective labeled and unlabeled datasets." Each minibatch is
entirely labelled or entirely unlabelled. One epoch here:

1. permute the labelled indices and the unlabelled indices (each appears exactly
   once per epoch) and cut each permutation into minibatches of ``batch_size``
   (the last one of each kind may be smaller, or is dropped with ``drop_last``);
2. lay out the kinds as a random permutation of ``n_lab`` "labelled" and
   ``n_unlab`` "unlabelled" entries (the per-kind batch counts), so at any step
   the chance of a labelled batch is, on average, ``n_lab / (n_lab + n_unlab)``:
   the dataset sizes set the proportions;
3. the i-th "labelled" step takes the i-th labelled minibatch (same for unlabelled).

Random draws are separated from their application: :func:`draw_mixed_plan`
samples an epoch's :class:`MixedEpochPlan` (the two permutations and the kind
order, from ``(seed, epoch)``) and :meth:`MixedEpochPlan.batches` turns it into
minibatches deterministically. :class:`MixedBatchSampler` iterates epochs and
keeps ``kind_log[epoch]``, the kind of every step, which is what Figure 3 plots
(epochs as rows, steps as columns, labelled steps coloured by their ``L_cl``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from wslbench.errors import ConfigError

__all__ = [
    "LABELLED",
    "UNLABELLED",
    "MixedBatch",
    "MixedEpochPlan",
    "MixedBatchSampler",
    "draw_mixed_plan",
    "num_batches",
]

LABELLED = "labelled"
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class MixedBatch:
    """One minibatch: its ``kind`` and the ``indices`` into the dataset of that kind."""

    kind: str
    indices: tuple[int, ...]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Minibatches of ``batch_size`` from ``n`` items (partial last one kept unless ``drop_last``)."""
    return n // batch_size if drop_last else -(-n // batch_size)


@dataclass(frozen=True)
class MixedEpochPlan:
    """The random record of one epoch; :meth:`batches` applies it deterministically.

    Attributes:
        epoch: epoch number the plan was drawn for.
        batch_size: items per minibatch.
        drop_last: whether a partial last minibatch of each kind is dropped.
        kinds: kind of every step, ``"labelled"`` or ``"unlabelled"``.
        labelled_order: permutation of ``range(n_labelled)``.
        unlabelled_order: permutation of ``range(n_unlabelled)``.
    """

    epoch: int
    batch_size: int
    drop_last: bool
    kinds: tuple[str, ...]
    labelled_order: tuple[int, ...]
    unlabelled_order: tuple[int, ...]

    def batches(self) -> list[MixedBatch]:
        """The epoch's minibatches in step order."""
        chunks = {
            LABELLED: self._chunks(self.labelled_order),
            UNLABELLED: self._chunks(self.unlabelled_order),
        }
        taken = {LABELLED: 0, UNLABELLED: 0}
        out = []
        for kind in self.kinds:
            out.append(MixedBatch(kind, chunks[kind][taken[kind]]))
            taken[kind] += 1
        return out

    def _chunks(self, order: tuple[int, ...]) -> list[tuple[int, ...]]:
        count = num_batches(len(order), self.batch_size, self.drop_last)
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(count)]


def _check_config(n_labelled: int, n_unlabelled: int, batch_size: int, seed: int) -> None:
    for name, value, low in (
        ("n_labelled", n_labelled, 0),
        ("n_unlabelled", n_unlabelled, 0),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_labelled + n_unlabelled == 0:
        raise ConfigError("the labelled and unlabelled data sets are both empty")


def draw_mixed_plan(
    n_labelled: int,
    n_unlabelled: int,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> MixedEpochPlan:
    """Draw one epoch's plan from ``(seed, epoch)`` (Arora et al., 4.3; module docstring).

    Args:
        n_labelled: size of the labelled data set.
        n_unlabelled: size of the unlabelled data set.
        batch_size: items per minibatch (both kinds).
        seed: non-negative base seed.
        epoch: non-negative epoch number (each epoch draws a new plan).
        drop_last: drop the partial last minibatch of each kind.

    Returns:
        The :class:`MixedEpochPlan` (same arguments, same plan).

    Raises:
        ConfigError: negative sizes or seed, ``batch_size < 1``, both sets empty.
    """
    _check_config(n_labelled, n_unlabelled, batch_size, seed)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ConfigError(f"epoch must be an integer >= 0, got {epoch!r}")
    rng = np.random.default_rng((seed, epoch))
    labelled_order = tuple(int(i) for i in rng.permutation(n_labelled))
    unlabelled_order = tuple(int(i) for i in rng.permutation(n_unlabelled))
    n_lab = num_batches(n_labelled, batch_size, drop_last)
    n_unlab = num_batches(n_unlabelled, batch_size, drop_last)
    kinds = np.array([LABELLED] * n_lab + [UNLABELLED] * n_unlab, dtype=object)
    return MixedEpochPlan(
        epoch=epoch,
        batch_size=batch_size,
        drop_last=drop_last,
        kinds=tuple(str(k) for k in rng.permutation(kinds)),
        labelled_order=labelled_order,
        unlabelled_order=unlabelled_order,
    )


class MixedBatchSampler:
    """Seeded epochs of whole labelled or whole unlabelled minibatches (Arora et al., 4.3).

    Each ``iter(sampler)`` runs one epoch (``sampler.epoch``, then advances it),
    yielding :class:`MixedBatch` items; index a labelled batch into the labelled
    data set and an unlabelled one into the unlabelled set. ``kind_log[e]`` keeps
    the kinds of epoch ``e``'s steps once that epoch has started (Figure 3).

    Args:
        n_labelled: size of the labelled data set (Messidor in the paper).
        n_unlabelled: size of the unlabelled data set (Messidor Extension).
        batch_size: items per minibatch.
        seed: non-negative base seed; epoch ``e`` uses ``(seed, e)``.
        drop_last: drop the partial last minibatch of each kind (then not every
            index appears each epoch; useful when a 1-item batch would break
            batch normalisation).

    Example:
        >>> sampler = MixedBatchSampler(6, 10, batch_size=4, seed=0)
        >>> [b.kind for b in sampler].count("labelled")
        2
    """

    def __init__(
        self,
        n_labelled: int,
        n_unlabelled: int,
        batch_size: int,
        *,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        _check_config(n_labelled, n_unlabelled, batch_size, seed)
        self.n_labelled = n_labelled
        self.n_unlabelled = n_unlabelled
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.kind_log: dict[int, tuple[str, ...]] = {}

    def plan(self, epoch: int) -> MixedEpochPlan:
        """The plan of ``epoch`` (pure: does not advance or log)."""
        return draw_mixed_plan(
            self.n_labelled,
            self.n_unlabelled,
            self.batch_size,
            seed=self.seed,
            epoch=epoch,
            drop_last=self.drop_last,
        )

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run ``epoch`` (to resume a training)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[MixedBatch]:
        plan = self.plan(self.epoch)
        self.kind_log[plan.epoch] = plan.kinds
        self.epoch += 1
        return iter(plan.batches())

    def __len__(self) -> int:
        return num_batches(self.n_labelled, self.batch_size, self.drop_last) + num_batches(
            self.n_unlabelled, self.batch_size, self.drop_last
        )
