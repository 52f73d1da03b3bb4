"""The one experiment memo (issue 18): bounded, clearable, bound to its data, no cancelled result."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wslbench.errors import ConfigError
from wslbench.experiments import ExperimentCache, clear_caches, list_caches
from wslbench.progress import StopRequested


@dataclass
class _Result:
    value: int
    interrupted: bool = False


def test_least_recently_used_entries_leave_at_maxsize():
    cache, data, calls = ExperimentCache("toy", maxsize=2), object(), []

    def compute(v):
        calls.append(v)
        return _Result(v)

    a = cache.get_or_compute("a", data, lambda: compute(1))
    cache.get_or_compute("b", data, lambda: compute(2))
    assert cache.get_or_compute("a", data, lambda: compute(9)) is a  # a is now the newest
    cache.get_or_compute("c", data, lambda: compute(3))  # evicts b
    assert len(cache) == 2 and calls == [1, 2, 3]
    cache.get_or_compute("b", data, lambda: compute(4))
    assert calls == [1, 2, 3, 4]


def test_a_result_is_bound_to_the_data_it_was_computed_on():
    cache = ExperimentCache("toy")
    first = cache.get_or_compute("k", object(), lambda: _Result(1))
    again = cache.get_or_compute("k", object(), lambda: _Result(2))
    assert first.value == 1 and again.value == 2


def test_an_interrupted_result_is_returned_but_never_stored():
    cache, data = ExperimentCache("toy"), object()
    half = cache.get_or_compute("k", data, lambda: _Result(1, interrupted=True))
    assert half.interrupted and len(cache) == 0
    full = cache.get_or_compute("k", data, lambda: _Result(2))
    assert cache.get_or_compute("k", data, lambda: _Result(3)) is full


def test_clear_caches_empties_every_cache_and_bad_sizes_are_refused():
    cache = ExperimentCache("toy")
    cache.get_or_compute("k", object(), lambda: _Result(1))
    assert cache in list_caches()
    clear_caches()
    assert len(cache) == 0
    with pytest.raises(ConfigError, match="maxsize must be an integer >= 1"):
        ExperimentCache("bad", maxsize=0)


def _stop_at_first_step(step, total, logs):
    raise StopRequested


def _paper_cases():
    from wslbench.experiments import cnncs, dr, ssl, wsl

    def dr_case():
        config = dr.dr_config("smoke", iterations=10, seed=11)
        return config, dr.make_dr_data(config), dr.train_dr_cached

    def wsl_case():
        config = wsl.wsl_config("smoke", epochs=2, seed=11)
        return config, wsl.make_wsl_data(config), wsl.train_wsl_cached

    def ssl_case():
        config = ssl.ssl_config("smoke", seed=11)
        return config, ssl.make_ssl_data(config), ssl.train_ssl_cached

    def cnncs_case():
        config = cnncs.cnncs_config("smoke", epochs=2, warmup_epochs=1, seed=11)
        return config, cnncs.make_cell_data(config), cnncs.train_cnncs_cached

    return {"dr": dr_case, "wsl": wsl_case, "ssl": ssl_case, "cnncs": cnncs_case}


@pytest.mark.parametrize("paper", ["dr", "wsl", "ssl", "cnncs"])
def test_cancel_then_rerun_gets_the_full_result(paper):
    config, data, train_cached = _paper_cases()[paper]()
    cut = train_cached(config, data, progress=_stop_at_first_step)
    assert cut.interrupted  # the shared loop's rule: stop, return, mark
    full = train_cached(config, data)
    assert not full.interrupted and full is not cut
    assert train_cached(config, data) is full
