from __future__ import annotations

import pytest

from wslbench.errors import ConfigError
from wslbench.training import (
    LABELLED,
    UNLABELLED,
    MixedBatch,
    MixedBatchSampler,
    draw_mixed_plan,
    num_batches,
)


def test_num_batches() -> None:
    assert num_batches(10, 4) == 3
    assert num_batches(10, 4, drop_last=True) == 2
    assert num_batches(8, 4) == 2
    assert num_batches(0, 4) == 0


def test_counts_equal_per_kind_batch_numbers() -> None:
    sampler = MixedBatchSampler(10, 23, batch_size=4, seed=3)
    batches = list(sampler)
    kinds = [b.kind for b in batches]
    assert kinds.count(LABELLED) == 3 and kinds.count(UNLABELLED) == 6
    assert len(sampler) == 9 == len(batches)
    assert all(isinstance(b, MixedBatch) for b in batches)
    # Full batches except the last one of each kind.
    sizes = {
        k: sorted(len(b.indices) for b in batches if b.kind == k) for k in (LABELLED, UNLABELLED)
    }
    assert sizes[LABELLED] == [2, 4, 4]
    assert sizes[UNLABELLED] == [3, 4, 4, 4, 4, 4]


def test_every_index_exactly_once_per_epoch() -> None:
    sampler = MixedBatchSampler(13, 31, batch_size=5, seed=0)
    for _ in range(3):
        seen: dict[str, list[int]] = {LABELLED: [], UNLABELLED: []}
        for batch in sampler:
            seen[batch.kind].extend(batch.indices)
        assert sorted(seen[LABELLED]) == list(range(13))
        assert sorted(seen[UNLABELLED]) == list(range(31))


def test_epochs_differ_and_are_logged() -> None:
    sampler = MixedBatchSampler(12, 20, batch_size=2, seed=5)
    first = list(sampler)
    second = list(sampler)
    assert first != second
    assert sampler.epoch == 2
    assert sampler.kind_log[0] == tuple(b.kind for b in first)
    assert sampler.kind_log[1] == tuple(b.kind for b in second)


def test_seeded_determinism() -> None:
    a = MixedBatchSampler(9, 17, batch_size=3, seed=42)
    b = MixedBatchSampler(9, 17, batch_size=3, seed=42)
    c = MixedBatchSampler(9, 17, batch_size=3, seed=43)
    run_a = [list(a), list(a)]
    assert run_a == [list(b), list(b)]
    assert run_a[0] != list(c)
    # Resuming at epoch 1 replays epoch 1; the plan record replays the epoch.
    a.set_epoch(1)
    assert list(a) == run_a[1]
    assert a.plan(1).batches() == run_a[1]
    assert draw_mixed_plan(9, 17, 3, seed=42, epoch=0).batches() == run_a[0]


def test_labelled_share_among_first_steps_matches_proportion() -> None:
    # 4 labelled and 12 unlabelled batches: P(labelled) = 0.25 at every step.
    k, seeds = 4, 2000
    labelled = 0
    for seed in range(seeds):
        kinds = draw_mixed_plan(16, 48, 4, seed=seed).kinds
        assert kinds.count(LABELLED) == 4
        labelled += kinds[:k].count(LABELLED)
    share = labelled / (k * seeds)
    # Standard error of the mean < 0.005 here; the bound is ~5 sigma.
    assert share == pytest.approx(0.25, abs=0.025)


def test_kind_order_is_not_fixed() -> None:
    orders = {draw_mixed_plan(4, 8, 2, seed=s).kinds for s in range(30)}
    assert len(orders) > 10


def test_drop_last_and_empty_kind() -> None:
    sampler = MixedBatchSampler(10, 7, batch_size=4, seed=0, drop_last=True)
    batches = list(sampler)
    assert [b.kind for b in batches].count(LABELLED) == 2
    assert all(len(b.indices) == 4 for b in batches)
    only_unlabelled = list(MixedBatchSampler(0, 5, batch_size=2))
    assert {b.kind for b in only_unlabelled} == {UNLABELLED}


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        MixedBatchSampler(4, 4, batch_size=0)
    with pytest.raises(ConfigError, match="both empty"):
        MixedBatchSampler(0, 0, batch_size=2)
    with pytest.raises(ConfigError, match="n_labelled"):
        MixedBatchSampler(-1, 4, batch_size=2)
    with pytest.raises(ConfigError, match="epoch"):
        MixedBatchSampler(4, 4, batch_size=2).set_epoch(-1)
