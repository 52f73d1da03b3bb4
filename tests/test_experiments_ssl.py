"""The SSL DR experiment (Arora et al.) on the smoke preset: pools, regimes, logs, sweeps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import ssl


@pytest.fixture(scope="module")
def smoke():
    config = ssl.ssl_config("smoke")
    return config, ssl.make_ssl_data(config)


def test_paper_preset_and_bad_overrides():
    paper = ssl.ssl_config("paper")
    assert (paper.architecture, paper.image_size, paper.batch_size, paper.lam) == (
        "aeres18", 512, 48, 3.0)
    assert (paper.lr, paper.momentum, paper.nesterov, paper.weight_decay) == (0.004, 0.9, False, 1e-5)
    with pytest.raises(ConfigError, match="label_fraction"):
        ssl.ssl_config("smoke", label_fraction=0.0)
    with pytest.raises(ConfigError, match="expected one of"):
        ssl.ssl_config("smoke", regime="semi")


def test_pools_are_disjoint_and_the_test_set_is_fixed(smoke):
    config, data = smoke
    parts = [set(data.labelled), set(data.unlabelled), set(data.val), set(data.test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == config.n_images + config.n_unlabelled
    assert (data.labels[data.labelled] >= 0).all() and (data.labels[config.n_images:] == -1).all()
    other = ssl.make_ssl_data(replace(config, seed=1))
    assert np.array_equal(np.sort(other.test), np.sort(data.test)), "test_seed fixes the test set"


@pytest.mark.parametrize("architecture", ["aecl1", "aeres18"])
@pytest.mark.parametrize("regime", ssl.REGIMES)
def test_each_regime_trains_and_logs_its_minibatch_kinds(smoke, architecture, regime):
    config, data = smoke
    run = ssl.train_ssl(replace(config, architecture=architecture, regime=regime), data)
    kinds = {s["kind"] for s in run.steps}
    expected = {"cl": {"labelled"}, "ae_then_cl": {"labelled", "unlabelled"},
                "combined": {"labelled", "unlabelled"}}[regime]
    assert kinds == expected
    assert 0.0 <= run.max_test_accuracy <= 1.0
    if regime == "combined":  # whole minibatches of each kind, in proportion to the pools
        labelled_steps = sum(s["kind"] == "labelled" for s in run.steps)
        per_epoch = -(-len(data.labelled) // config.batch_size)
        assert labelled_steps == per_epoch * config.epochs
        assert all("L_cl" in s and "lambda" in s for s in run.steps if s["kind"] == "labelled")


def test_ae_phase_lowers_the_reconstruction_loss(smoke):
    config, data = smoke
    run = ssl.train_ssl(replace(config, regime="ae_then_cl", ae_epochs=6, augment=False), data)
    ae = [h["loss"] for h in run.history if h["phase"] == "ae"]
    assert ae[-1] < ae[0]


def test_seeded_training_and_adaptive_lambda(smoke):
    config, data = smoke
    a = ssl.train_ssl(config, data)
    b = ssl.train_ssl(config, data)
    assert [s["L_ae"] for s in a.steps] == [s["L_ae"] for s in b.steps]
    adaptive = ssl.train_ssl(replace(config, adaptive_lambda=True), data)
    lambdas = [s["lambda"] for s in adaptive.steps if s["kind"] == "labelled"]
    assert lambdas and all(v > 0 for v in lambdas) and len(set(lambdas)) > 1


def test_tables_reconstructions_and_errors(smoke):
    config, data = smoke
    rows = ssl.compare_regimes(config, data)
    assert [r["regime"] for r in rows] == list(ssl.REGIMES)
    sweep = ssl.label_fraction_sweep(config, [0.5], regimes=("cl",))
    assert sweep[0]["label_fraction"] == 0.5
    run = ssl.train_ssl_cached(config, data)
    recon = ssl.reconstructions(run.model, data.images[:2])
    assert recon.shape == (2, 3, 64, 64) and 0 <= float(recon.min()) and float(recon.max()) <= 1
    with pytest.raises(InvalidInputError, match="labelled cases"):
        ssl.evaluate_ssl(run.model, data, data.unlabelled[-2:])
